//! The parsed form the decoder validates: serde_json parses the bytes, but
//! into a tree whose strings and keys borrow from the input (unless they
//! hold escapes) and whose objects are member lists, so that decoding an
//! event allocates little beyond the event it returns. Only what is kept
//! as JSON (a tool call's `arguments`, extension attributes, fields of a
//! newer minor version) becomes a `serde_json::Value`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value borrowing from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json reads it (an integer or a finite float).
    Number(Number),
    /// A string: borrowed when the text has no escapes.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object.
    Object(Members<'a>),
}

/// An object's members in the order of the text. A key sent twice counts
/// once, with its last value, as in a `serde_json::Map`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Members<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Members<'a> {
    /// The value of `key` (the last one if it was sent twice).
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The members as sent, in the text's order.
    pub(crate) fn entries(&self) -> &[(Cow<'a, str>, Json<'a>)] {
        &self.0
    }

    /// The members as sent, in the text's order, keys as `&str`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl Json<'_> {
    /// The JSON type's name, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number as a `u64`, if it is a non-negative integer.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The object's members, if this is one.
    pub(crate) fn as_object(&self) -> Option<&Members<'_>> {
        match self {
            Json::Object(m) => Some(m),
            _ => None,
        }
    }

    /// An owned `serde_json::Value` with the same content (for what the
    /// event keeps as JSON).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::Str(s) => Value::String(s.as_ref().to_owned()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(m) => {
                let mut map = Map::new();
                for (k, v) in m.iter() {
                    map.insert(k.to_owned(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(Key(k)) = map.next_key()? {
            let v = map.next_value()?;
            members.push((k, v));
        }
        Ok(Json::Object(Members(members)))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_a_value_keeps() {
        for text in [
            r#"{"b":1,"a":[true,null,-2,1.5,"x\u0041"],"c":{"d":"é","e":{}}}"#,
            r#"[1e2, -0, 18446744073709551615, -9223372036854775808, "\\"]"#,
            r#""plain""#,
            r#"{"k":1,"k":2}"#,
        ] {
            let ours: Json<'_> = serde_json::from_str(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours.to_value(), theirs, "{text}");
        }
    }

    #[test]
    fn borrows_unescaped_strings_and_keys() {
        let text = r#"{"plain":"text","esc\u0061ped":"a\nb"}"#;
        let v: Json<'_> = serde_json::from_str(text).unwrap();
        let m = v.as_object().unwrap();
        let (k, s) = m.iter().next().unwrap();
        assert_eq!(k, "plain");
        assert!(matches!(s, Json::Str(Cow::Borrowed("text"))));
        assert_eq!(m.get("escaped").and_then(Json::as_str), Some("a\nb"));
    }

    #[test]
    fn a_repeated_key_counts_once_with_its_last_value() {
        let v: Json<'_> = serde_json::from_str(r#"{"z":0,"k":1,"a":2,"k":3}"#).unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(m.get("k"), Some(&Json::Number(3.into())));
        assert_eq!(m.entries().len(), 4);
    }

    #[test]
    fn parse_errors_are_serde_json_s() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let e = serde_json::from_str::<Json<'_>>(&deep).unwrap_err();
        assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
        let e = serde_json::from_str::<Json<'_>>("1e309").unwrap_err();
        assert!(e.to_string().starts_with("number out of range"), "{e}");
    }
}
