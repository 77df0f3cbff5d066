//! The `[pricing]` section and the price book built from it: effective-dated
//! rates per GPU-second (by GPU model and tier), per million tokens (by
//! model) and per tool call (by tool). Usage is priced with the rate in force
//! at the time it happened.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tollgate_event::PricingTier;

use crate::Error;

/// `[pricing]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// ISO 4217 currency code of every amount in this deployment.
    pub currency: String,
    /// GPU rates.
    pub gpu: Vec<GpuRate>,
    /// Token rates.
    pub tokens: Vec<TokenRate>,
    /// Flat fees per tool call.
    pub tools: Vec<ToolFee>,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            gpu: Vec::new(),
            tokens: Vec::new(),
            tools: Vec::new(),
        }
    }
}

/// `[[pricing.gpu]]`: the price of one GPU-second.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuRate {
    /// GPU model as in the events' `gpu_model`.
    pub gpu_model: String,
    /// Pricing tier.
    pub tier: PricingTier,
    /// Price per GPU-second, as a decimal string.
    #[serde(with = "rust_decimal::serde::str")]
    pub per_gpu_second: Decimal,
    /// From when the rate applies (RFC 3339, UTC).
    pub effective_from: DateTime<Utc>,
}

/// `[[pricing.tokens]]`: the price of a million tokens of one model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRate {
    /// Model as in the events' `model`.
    pub model: String,
    /// Price per million input tokens, as a decimal string.
    #[serde(with = "rust_decimal::serde::str")]
    pub input_per_million: Decimal,
    /// Price per million output tokens, as a decimal string.
    #[serde(with = "rust_decimal::serde::str")]
    pub output_per_million: Decimal,
    /// From when the rate applies.
    pub effective_from: DateTime<Utc>,
}

/// `[[pricing.tools]]`: a flat fee per call of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolFee {
    /// Tool name as in the events' `tool`.
    pub tool: String,
    /// Fee per completed call, as a decimal string.
    #[serde(with = "rust_decimal::serde::str")]
    pub per_call: Decimal,
    /// From when the fee applies.
    pub effective_from: DateTime<Utc>,
}

/// Rates looked up by key and time. Built from a checked [`PricingConfig`].
#[derive(Debug, Clone)]
pub struct PriceBook {
    config: PricingConfig,
}

/// The entry of `entries` that matches and is in force at `at`: the one with
/// the latest `effective_from` not after `at`.
fn in_force<T>(
    entries: &[T],
    at: DateTime<Utc>,
    matches: impl Fn(&T) -> bool,
    from: impl Fn(&T) -> DateTime<Utc>,
) -> Option<&T> {
    entries
        .iter()
        .filter(|e| matches(e) && from(e) <= at)
        .max_by_key(|e| from(e))
}

impl PriceBook {
    /// Checks `config` (currency code, no negative rates, no two rates for
    /// the same key and time) and builds the book.
    pub fn new(config: PricingConfig) -> Result<Self, Error> {
        let c = &config.currency;
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::Pricing(format!(
                "currency must be an ISO 4217 code such as USD or EUR, got {c:?}"
            )));
        }
        let mut keys = std::collections::HashSet::new();
        for g in &config.gpu {
            if g.per_gpu_second.is_sign_negative() {
                return Err(Error::Pricing(format!(
                    "gpu {} {}: negative rate",
                    g.gpu_model, g.tier
                )));
            }
            if !keys.insert((
                "gpu",
                format!("{}/{}", g.gpu_model, g.tier),
                g.effective_from,
            )) {
                return Err(Error::Pricing(format!(
                    "gpu {} {}: two rates take effect at {}",
                    g.gpu_model, g.tier, g.effective_from
                )));
            }
        }
        for t in &config.tokens {
            if t.input_per_million.is_sign_negative() || t.output_per_million.is_sign_negative() {
                return Err(Error::Pricing(format!("tokens {}: negative rate", t.model)));
            }
            if !keys.insert(("tokens", t.model.clone(), t.effective_from)) {
                return Err(Error::Pricing(format!(
                    "tokens {}: two rates take effect at {}",
                    t.model, t.effective_from
                )));
            }
        }
        for t in &config.tools {
            if t.per_call.is_sign_negative() {
                return Err(Error::Pricing(format!("tool {}: negative fee", t.tool)));
            }
            if !keys.insert(("tools", t.tool.clone(), t.effective_from)) {
                return Err(Error::Pricing(format!(
                    "tool {}: two fees take effect at {}",
                    t.tool, t.effective_from
                )));
            }
        }
        Ok(Self { config })
    }

    /// The currency code.
    pub fn currency(&self) -> &str {
        &self.config.currency
    }

    /// The configuration the book was built from.
    pub fn config(&self) -> &PricingConfig {
        &self.config
    }

    /// Price per GPU-second of `gpu_model` on `tier` at `at`, if one is set.
    pub fn gpu_rate(
        &self,
        gpu_model: &str,
        tier: PricingTier,
        at: DateTime<Utc>,
    ) -> Option<Decimal> {
        in_force(
            &self.config.gpu,
            at,
            |g| g.gpu_model == gpu_model && g.tier == tier,
            |g| g.effective_from,
        )
        .map(|g| g.per_gpu_second)
    }

    /// Cost of `gpu_millis` GPU-milliseconds, priced at `at`.
    pub fn gpu_cost(
        &self,
        gpu_model: &str,
        tier: PricingTier,
        at: DateTime<Utc>,
        gpu_millis: i64,
    ) -> Option<Decimal> {
        let rate = self.gpu_rate(gpu_model, tier, at)?;
        Some(rate * Decimal::from(gpu_millis) / Decimal::ONE_THOUSAND)
    }

    /// Cost of a model's tokens at `at`.
    pub fn token_cost(
        &self,
        model: &str,
        at: DateTime<Utc>,
        input: u64,
        output: u64,
    ) -> Option<Decimal> {
        let r = in_force(
            &self.config.tokens,
            at,
            |t| t.model == model,
            |t| t.effective_from,
        )?;
        let million = Decimal::from(1_000_000u32);
        Some(
            (Decimal::from(input) * r.input_per_million
                + Decimal::from(output) * r.output_per_million)
                / million,
        )
    }

    /// The flat fee for one call of `tool` at `at` (zero when none is set).
    pub fn tool_fee(&self, tool: &str, at: DateTime<Utc>) -> Decimal {
        in_force(
            &self.config.tools,
            at,
            |t| t.tool == tool,
            |t| t.effective_from,
        )
        .map_or(Decimal::ZERO, |t| t.per_call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn rate_in_force_follows_effective_time() {
        let book = PriceBook::new(PricingConfig {
            gpu: vec![
                GpuRate {
                    gpu_model: "H100".into(),
                    tier: PricingTier::OnDemand,
                    per_gpu_second: Decimal::from_str("0.0011").unwrap(),
                    effective_from: at("2026-01-01T00:00:00Z"),
                },
                GpuRate {
                    gpu_model: "H100".into(),
                    tier: PricingTier::OnDemand,
                    per_gpu_second: Decimal::from_str("0.0010").unwrap(),
                    effective_from: at("2026-10-15T00:00:00Z"),
                },
            ],
            ..PricingConfig::default()
        })
        .unwrap();
        let before = book.gpu_cost(
            "H100",
            PricingTier::OnDemand,
            at("2026-10-14T23:59:59Z"),
            3_600_000,
        );
        let after = book.gpu_cost(
            "H100",
            PricingTier::OnDemand,
            at("2026-10-15T00:00:00Z"),
            3_600_000,
        );
        assert_eq!(before, Some(Decimal::from_str("3.96").unwrap()));
        assert_eq!(after, Some(Decimal::from_str("3.6").unwrap()));
        assert_eq!(
            book.gpu_cost("H100", PricingTier::Spot, at("2026-10-15T00:00:00Z"), 1),
            None
        );
        assert_eq!(
            book.gpu_cost("H100", PricingTier::OnDemand, at("2025-12-31T00:00:00Z"), 1),
            None
        );
    }

    #[test]
    fn refuses_bad_books() {
        let bad_currency = PricingConfig {
            currency: "usd".into(),
            ..PricingConfig::default()
        };
        assert!(PriceBook::new(bad_currency)
            .unwrap_err()
            .to_string()
            .contains("ISO 4217"));
        let negative = PricingConfig {
            tools: vec![ToolFee {
                tool: "x".into(),
                per_call: Decimal::from_str("-1").unwrap(),
                effective_from: at("2026-01-01T00:00:00Z"),
            }],
            ..PricingConfig::default()
        };
        assert!(PriceBook::new(negative)
            .unwrap_err()
            .to_string()
            .contains("negative"));
    }
}
