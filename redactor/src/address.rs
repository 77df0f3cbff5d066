//! Postal addresses of the US, the UK, Germany and France: a street with
//! its number and a street type ("Ave", "Road", "-straße", "rue") followed
//! by the town and its postcode (the state code for the US). A street
//! alone, or a postcode alone, is no address: "Wall Street reacted" and
//! "order 75002 shipped" are left alone.

/// US state and territory codes.
const US_STATES: &str = "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI";

/// US street types, as written out and abbreviated.
const US_TYPES: &str = "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Parkway|Pkwy|Terrace|Ter|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Plaza|Plz|Alley|Aly|Row|Loop|Pike|Broadway|Expressway|Expy|Freeway|Fwy|Turnpike|Tpke|Crossing|Xing|Point|Pt|Ridge|Run|Path|Walk";

/// UK street types.
const UK_TYPES: &str = "Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Close|Cl|Drive|Dr|Way|Gardens|Gdns|Place|Pl|Square|Sq|Crescent|Cres|Terrace|Tce|Grove|Gr|Hill|Court|Ct|Row|Mews|Walk|Park|Green|Parade|Rise|View|Vale|Wharf|Yard|Embankment|Circus|Gate|Drove|Fields|Meadows|Quay|Broadway";

/// German street suffixes (written together with the name) and words
/// (written apart: "Berliner Straße").
const DE_SUFFIXES: &str = "straße|strasse|str\\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee|steig|pfad|markt|graben|berg|hof|kai|zeile|stieg|twiete";
const DE_WORDS: &str = "Straße|Strasse|Str\\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer|Chaussee|Markt|Steig|Pfad|Graben|Tor|Promenade|Landstraße|Heerstraße";

/// French street types.
const FR_TYPES: &str = "rue|avenue|av\\.|boulevard|bd|place|pl\\.|allée|allee|impasse|imp\\.|chemin|ch\\.|quai|cours|route|rte|square|passage|voie|rond-point|faubourg|fbg|chaussée|esplanade|parvis|sentier|villa|cité|résidence|promenade|montée|lieu-dit|hameau";

/// Countries written after an address: part of it.
const COUNTRIES: &str = "USA|U\\.S\\.A\\.|U\\.S\\.|US|United States(?: of America)?|UK|U\\.K\\.|United Kingdom|Great Britain|England|Scotland|Wales|Northern Ireland|Germany|Deutschland|Allemagne|Alemania|Alemanha|Germania|France|Frankreich|Francia|França|Royaume-Uni|Reino Unido|Regno Unito|Vereinigtes Königreich|Estados Unidos|États-Unis|Stati Uniti|Vereinigte Staaten";

/// The patterns of the address kind, one per country.
pub fn patterns() -> Vec<String> {
    // Between the parts: a comma, a space or a line break.
    let sep = r"(?:,?[ ]|,?\r?\n)";
    let country = format!(r"(?:{sep}(?i:{COUNTRIES})(?-u:\b))?");
    // A capitalised word of a street or town name (ASCII for the US and UK).
    let word = r"[A-Z0-9][A-Za-z0-9'.-]*";
    let town = r"[A-Z][A-Za-z.'-]*";
    let us = format!(
        concat!(
            r"(?-u:\b)[0-9]{{1,6}}[A-Za-z]?(?:-[0-9]{{1,4}})? ",
            r"(?:(?:[NSEW]|North|South|East|West|NE|NW|SE|SW)\.? )?",
            r"(?:{word} ){{0,4}}(?i:{types})\.?(?: (?:[NSEW]|NE|NW|SE|SW)\.?)?",
            r"(?:,? (?i:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Rm|Room|Bldg|#)\.? ?#?[A-Za-z0-9-]{{1,6}})?",
            r"{sep}(?:{town} ){{0,3}}{town},? (?:{states})(?:,? [0-9]{{5}}(?:-[0-9]{{4}})?)?(?-u:\b){country}"
        ),
        word = word,
        town = town,
        sep = sep,
        types = US_TYPES,
        states = US_STATES,
        country = country,
    );
    let uk = format!(
        concat!(
            r"(?:(?:Flat|Apartment|Apt|Unit|Suite) [0-9A-Za-z/]{{1,5}}{sep})?",
            r"(?:[A-Z][a-z]+ (?:House|Cottage|Lodge|Farm|Court|Manor|Barn|Villa|Mansions|Chambers){sep})?",
            r"(?-u:\b)[0-9]{{1,4}}[A-Za-z]?(?:-[0-9]{{1,4}})?,? (?:{word} ){{1,4}}(?i:{types})\.?",
            r"(?:{sep}{town}(?: {town}){{0,2}}){{0,2}}{sep}",
            r"[A-Z]{{1,2}}[0-9][A-Z0-9]? ?[0-9][ABD-HJLNP-UW-Z]{{2}}(?-u:\b){country}"
        ),
        word = word,
        town = town,
        sep = sep,
        types = UK_TYPES,
        country = country,
    );
    let u = "[A-ZÄÖÜ]";
    let l = "[a-zäöüß]";
    let de = format!(
        concat!(
            r"(?:{u}{l}+(?:-{u}?{l}+)*(?:{suffixes})",
            r"|{u}{l}+(?:-{u}{l}+)*-(?:{words})",
            r"|(?:{u}{l}+er|Lange|Breite|Hohe|Alte|Neue|Große|Kleine|Obere|Untere|Schöne|Krumme) (?:{words})",
            r"|(?:Am|An der|An den|Auf der|Auf dem|Im|In der|In den|Zum|Zur|Unter den|Hinter der) {u}{l}+(?: {u}{l}+)?)",
            r" [0-9]{{1,4}} ?[a-zA-Z]?(?:[-/][0-9]{{1,4}}[a-z]?)?",
            r"(?:,? (?:[0-9]{{1,2}}\. (?:Stock|OG|Etage|Obergeschoss)(?: (?:links|rechts|Mitte|li\.|re\.))?|Hinterhaus|Vorderhaus|Seitenflügel|Gartenhaus|Whg\.? ?[0-9]{{1,4}}|Wohnung [0-9]{{1,4}}|App\.? ?[0-9]{{1,4}}))?",
            r"{sep}(?:D-)?[0-9]{{5}} {u}{l}+",
            r"(?:-{u}{l}+| (?:am|an der|im|in|bei|ob der|vor der) {u}{l}+| \({u}{l}+\))?{country}"
        ),
        u = u,
        l = l,
        sep = sep,
        suffixes = DE_SUFFIXES,
        words = DE_WORDS,
        country = country,
    );
    let fr = format!(
        concat!(
            r"(?:(?:(?:Appt|Appartement|Apt)\.? [0-9A-Z]{{1,5}}|Bât(?:\.|iment) [A-Z0-9]{{1,3}}|Résidence(?: \p{{Lu}}[\p{{L}}'’-]*){{1,3}}|Escalier [A-Z0-9]{{1,3}}|Porte [0-9A-Z]{{1,4}}|[0-9]{{1,2}}(?:e|er|ème) étage){sep})*",
            r"(?-u:\b)[0-9]{{1,4}}(?: ?(?:bis|ter|quater|B|C))?,? (?i:{types})",
            r"(?: [\p{{L}}'’.-]+){{1,6}}?{sep}(?:(?:BP|CS) [0-9]+,? )?[0-9]{{5}} ",
            r"(?:(?:Le|La|Les|L'|LE|LA|LES) ?)?\p{{Lu}}[\p{{L}}'’-]*",
            r"(?: (?:sur|sous|en|lès|d'|de|du) ?[\p{{Lu}}][\p{{L}}'’-]*)?",
            r"(?: (?i:cedex)(?: [0-9]{{1,2}})?)?{country}"
        ),
        types = FR_TYPES,
        sep = sep,
        country = country,
    );
    vec![us, uk, de, fr]
}

/// The span of an address matched by form `form`: the German form starts
/// at a letter, which must not be inside a word.
pub fn check(text: &str, start: usize, end: usize, form: usize) -> Option<(usize, usize)> {
    if form == 2
        && text[..start]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    {
        return None;
    }
    // A sentence's full stop after the town is not part of it ("... Berlin.").
    let s = &text[start..end];
    let trimmed = s.trim_end_matches(['.', ',', ' ', '\'', '’']);
    (!trimmed.is_empty()).then_some((start, start + trimmed.len()))
}

#[cfg(test)]
mod tests {
    use crate::detect::Engine;
    use crate::kind::Kind;

    fn addresses(text: &str) -> Vec<String> {
        let e = Engine::shared(&Kind::ALL, &[]).unwrap();
        e.find(text)
            .into_iter()
            .filter(|f| f.kind.name() == "address")
            .map(|f| text[f.start..f.end].to_string())
            .collect()
    }

    #[test]
    fn addresses_of_four_countries() {
        for (text, value) in [
            (
                "ship to 1600 Amphitheatre Pkwy, Mountain View, CA 94043 please",
                "1600 Amphitheatre Pkwy, Mountain View, CA 94043",
            ),
            (
                "lives at 350 W 34th St Apt 4B, New York, NY 10001-2345",
                "350 W 34th St Apt 4B, New York, NY 10001-2345",
            ),
            (
                "Address: 221B Baker Street, London NW1 6XE",
                "221B Baker Street, London NW1 6XE",
            ),
            (
                "Flat 3, 12 High Street, Oxford, OX1 4AW.",
                "Flat 3, 12 High Street, Oxford, OX1 4AW",
            ),
            (
                "Lieferadresse: Hauptstraße 12, 10115 Berlin.",
                "Hauptstraße 12, 10115 Berlin",
            ),
            ("Am Markt 3a, 80331 München", "Am Markt 3a, 80331 München"),
            (
                "Berliner Straße 45 60311 Frankfurt am Main",
                "Berliner Straße 45 60311 Frankfurt am Main",
            ),
            (
                "adresse : 12 rue de la Paix, 75002 Paris",
                "12 rue de la Paix, 75002 Paris",
            ),
            (
                "5 bis avenue Victor Hugo 69003 Lyon",
                "5 bis avenue Victor Hugo 69003 Lyon",
            ),
        ] {
            assert_eq!(addresses(text), vec![value.to_string()], "{text}");
        }
    }

    #[test]
    fn streets_and_postcodes_alone_are_no_address() {
        for text in [
            "Wall Street reacted to the Fed",
            "Main Street investors are cautious",
            "order 75002 shipped to the customer",
            "10115 rows loaded in 3 s",
            "the Hauptstraße is closed",
            "12 rue de la Paix est fermée",
        ] {
            assert_eq!(addresses(text), Vec::<String>::new(), "{text}");
        }
    }
}
