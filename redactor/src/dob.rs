//! Dates of birth: a date right after a word that says it is one ("DOB",
//! "born on", "geboren am", "né le", "fecha de nacimiento", ...), in the
//! numeric and written forms of the five languages. Other dates are not PII.

use std::sync::LazyLock;

use regex_automata::meta::Regex;

/// The date forms, for finding the date inside a match.
const DATE: &str = r"(?x)
    [0-9]{1,2}[./-][0-9]{1,2}[./-][0-9]{2,4}
  | [0-9]{4}[./-][0-9]{1,2}[./-][0-9]{1,2}
  | [0-9]{1,2}(?:st|nd|rd|th|er|º|°)?\.?[\ \t]+(?:de[\ \t]+|of[\ \t]+)?\p{L}{3,10}\.?,?[\ \t]+(?:de[\ \t]+)?[0-9]{4}
  | \p{L}{3,10}\.?[\ \t]+[0-9]{1,2}(?:st|nd|rd|th)?,?[\ \t]+[0-9]{4}
  | [0-9]{1,2}[-/\ ]\p{L}{3}\.?[-/\ ][0-9]{4}";

/// The words that introduce a date of birth.
const CUE: &str = r"(?i:d\.?o\.?b\.?s?|date[ \t_]+of[ \t_]+birth|dateofbirth|birth[ \t_]?date|birthday|born(?:[ \t]+on)?|geboren(?:[ \t]+(?:am|op))?|geboortedatum|geburtsdatum|geburtstag|geb\.(?:-datum|[ \t]+am)?|née?(?:\(e\))?(?:[ \t]+le)?|nasci(?:[ \t]+(?:em|a))?|nací(?:[ \t]+el)?|date[ \t_]+(?:de[ \t_]+)?naissance|fecha[ \t_]+(?:de[ \t_]+)?nacimiento|fecha[ \t]+(?:de[ \t]+)?nac\.|nacimiento|nacid[oa](?:[ \t]+el)?|data[ \t_]+(?:de[ \t_]+)?nascimento|data[ \t]+(?:de[ \t]+)?nasc\.|nascimento|nascid[oa](?:[ \t]+em)?|data[ \t]+di[ \t]+nascita|nat[oa][ \t]+il)";

/// The pattern of the `dob` kind: a cue, separators, a date.
pub fn pattern() -> String {
    let date = DATE.trim_start_matches("(?x)");
    format!(
        r#"(?-u:\b){CUE}(?:[ \t\r\n]*(?i:is|was|ist|est|es|é|c|le|el|em|as|(?:keyed|entered|given|listed|recorded|stated)[ \t]+as|shows|reads|on[ \t]+(?:file|record)|[:=,(\-"']))*[ \t\r\n]*(?x:{date})"#
    )
}

static DATE_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(DATE).ok());

/// What joins the dates of a list ("DOBs 04/20/1951, 07/21/1958 and
/// 10/02/1963").
static LIST_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:,[ \t]*(?:(?:and|or|et|ou|y|o|e|und|oder)[ \t]+)?|[ \t]+(?:and|or|et|ou|y|o|e|und|oder)[ \t]+)").ok()
});

/// The dates that continue a list after a date of birth ending at `end`:
/// each a date of birth too.
pub fn list_after(text: &str, mut end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (Some(list), Some(date)) = (LIST_RE.as_ref(), DATE_RE.as_ref()) else {
        return out;
    };
    while let Some(sep) = list.find(&text[end..]) {
        let at = end + sep.end();
        let Some(m) = date
            .find(regex_automata::Input::new(&text[at..]).anchored(regex_automata::Anchored::Yes))
        else {
            break;
        };
        let d = &text[at..at + m.end()];
        if dob(d) != Some((0, d.len()))
            || text[at + m.end()..].starts_with(|c: char| c.is_alphanumeric())
        {
            break;
        }
        out.push((at, at + m.end()));
        end = at + m.end();
    }
    out
}

const MONTHS: &[&str] = &[
    // English
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    // Dutch
    "januari",
    "februari",
    "maart",
    "mei",
    "augustus",
    // German
    "januar",
    "jänner",
    "februar",
    "märz",
    "maerz",
    "mai",
    "juni",
    "juli",
    "oktober",
    "dezember",
    "okt",
    "dez",
    // French
    "janvier",
    "février",
    "fevrier",
    "mars",
    "avril",
    "juin",
    "juillet",
    "août",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
    "decembre",
    "janv",
    "févr",
    "fév",
    "avr",
    "juil",
    "déc",
    // Spanish
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "setiembre",
    "octubre",
    "noviembre",
    "diciembre",
    "ene",
    "dic",
    // Portuguese
    "janeiro",
    "fevereiro",
    "março",
    "marco",
    "maio",
    "junho",
    "julho",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
    "fev",
    "set",
    "out",
    "dez",
    // Italian
    "gennaio",
    "febbraio",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "settembre",
    "ottobre",
    "dicembre",
];

/// The span (relative to `s`) of the date in a matched `dob`, if it is a
/// plausible date: a known month name, or numbers that make a day, a
/// month and a year from 1900 on.
pub fn dob(s: &str) -> Option<(usize, usize)> {
    let re = DATE_RE.as_ref()?;
    let m = re.find(s)?;
    let date = &s[m.start()..m.end()];
    let words: Vec<String> = date
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.len() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !matches!(w.as_str(), "st" | "nd" | "rd" | "th"))
        .collect();
    let numbers: Vec<u32> = date
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let plausible = if let Some(word) = words.first() {
        MONTHS.contains(&word.trim_end_matches('.'))
            && numbers.len() == 2
            && numbers.iter().any(|&n| (1..=31).contains(&n))
            && numbers.iter().any(|&n| (1900..=2100).contains(&n))
    } else {
        match numbers.as_slice() {
            [y, m, d] if *y >= 1000 => {
                (1900..=2100).contains(y) && (1..=12).contains(m) && (1..=31).contains(d)
            }
            [a, b, y] => {
                let year = *y < 100 || (1900..=2100).contains(y);
                let dm = (1..=31).contains(a) && (1..=12).contains(b);
                let md = (1..=12).contains(a) && (1..=31).contains(b);
                year && (dm || md)
            }
            _ => false,
        }
    };
    plausible.then_some((m.start(), m.end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = |s: &'static str| dob(s).map(|(a, b)| &s[a..b]);
        assert_eq!(d("DOB: 14/03/1985"), Some("14/03/1985"));
        assert_eq!(d("born on March 3, 1990"), Some("March 3, 1990"));
        assert_eq!(d("geboren am 12. März 1985"), Some("12. März 1985"));
        assert_eq!(d("née le 4 juillet 1979"), Some("4 juillet 1979"));
        assert_eq!(
            d("fecha de nacimiento: 5 de mayo de 1980"),
            Some("5 de mayo de 1980")
        );
        assert_eq!(d("born 1985-13-01"), None);
        assert_eq!(d("né(e) le 06/03/1981"), Some("06/03/1981"));
        assert_eq!(d("nasci em 5 de junho de 1982"), Some("5 de junho de 1982"));
        assert_eq!(
            d("date of birth keyed as 11/21/1980 instead"),
            Some("11/21/1980")
        );
        let t = "DOBs 04/20/1951, 07/21/1958 and 10/02/1963 across";
        let dates: Vec<&str> = list_after(t, 15).iter().map(|&(a, z)| &t[a..z]).collect();
        assert_eq!(dates, ["07/21/1958", "10/02/1963"]);
        assert_eq!(d("born on Monday 3, 1990"), None);
    }
}
