//! Tables pasted into prompts (CRM exports, CSV, `;`- or tab-separated
//! lists): a header line names the columns, and a column called `name`,
//! `Nachname`, `prénom`, `date_of_birth`, `Geburtsdatum`, `address`,
//! `telefone`, ... makes each row's field in it a finding of that kind,
//! whatever the field holds ("Tepox Xolalpa", "30.1.1994", "923 756 150").

use crate::kind::Kind;

/// The kind of the values in a column, from its header.
fn column_kind(header: &str) -> Option<Kind> {
    let h: String = header
        .trim()
        .trim_matches(['"', '\''])
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    let h = h.as_str();
    let person = [
        "name",
        "fullname",
        "firstname",
        "lastname",
        "surname",
        "forename",
        "givenname",
        "familyname",
        "middlename",
        "customername",
        "clientname",
        "contactname",
        "holder",
        "holdername",
        "accountholder",
        "cardholder",
        "cardholdername",
        "beneficiary",
        "beneficiaryname",
        "payee",
        "payeename",
        "applicant",
        "applicantname",
        "nom",
        "prénom",
        "prenom",
        "nomcomplet",
        "nomdefamille",
        "titulaire",
        "nombre",
        "apellido",
        "apellidos",
        "nombrecompleto",
        "titular",
        "nome",
        "sobrenome",
        "nomecompleto",
        "cognome",
        "nominativo",
        "vorname",
        "nachname",
        "kontoinhaber",
        "inhaber",
        "kunde",
        "kundenname",
        "voornaam",
        "achternaam",
        "naam",
    ];
    let dob = [
        "dob",
        "dateofbirth",
        "birthdate",
        "birthday",
        "datenaissance",
        "datedenaissance",
        "geburtsdatum",
        "geburtstag",
        "fechanacimiento",
        "fechadenacimiento",
        "fnac",
        "datanascimento",
        "datadenascimento",
        "datadinascita",
        "geboortedatum",
    ];
    let address = [
        "address",
        "mailingaddress",
        "streetaddress",
        "homeaddress",
        "billingaddress",
        "shippingaddress",
        "postaladdress",
        "adresse",
        "anschrift",
        "wohnadresse",
        "direccion",
        "dirección",
        "domicilio",
        "morada",
        "endereco",
        "endereço",
        "indirizzo",
        "adres",
    ];
    let phone = [
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "mobile",
        "mobilephone",
        "cell",
        "cellphone",
        "telefon",
        "telefonnummer",
        "handy",
        "mobil",
        "mobilnummer",
        "téléphone",
        "telephone",
        "portable",
        "teléfono",
        "telefono",
        "móvil",
        "movil",
        "telefone",
        "telemóvel",
        "telemovel",
        "tlm",
        "whatsapp",
        "mobilenumber",
        "mobileno",
        "phoneno",
        "contactnumber",
        "celular",
        "cellulare",
        "telefoon",
    ];
    // Columns of ids: a field counts when its check digits hold.
    let ssn = ["ssn", "socialsecurity", "socialsecuritynumber", "ssnnumber"];
    let aba_routing = [
        "routing",
        "routingnumber",
        "routingno",
        "aba",
        "abanumber",
        "abarouting",
        "rtn",
    ];
    let in_aadhaar = ["aadhaar", "aadhar", "aadhaarno", "aadhaarnumber"];
    let de_tax_id = ["steuerid", "steueridentifikationsnummer", "idnr", "taxid"];
    let br_cpf = ["cpf"];
    let ca_sin = ["sin", "socialinsurancenumber", "nas"];
    let bic = [
        "bic",
        "swift",
        "swiftcode",
        "biccode",
        "bicswift",
        "swiftbic",
    ];
    let passport = [
        "passport",
        "passportno",
        "passportnumber",
        "reisepass",
        "reisepassnummer",
        "passnummer",
        "passeport",
        "pasaporte",
        "passaporte",
    ];
    if person.contains(&h) {
        Some(Kind::Person)
    } else if phone.contains(&h) {
        Some(Kind::Phone)
    } else if dob.contains(&h) {
        Some(Kind::Dob)
    } else if address.contains(&h) {
        Some(Kind::Address)
    } else if ssn.contains(&h) {
        Some(Kind::Ssn)
    } else if aba_routing.contains(&h) {
        Some(Kind::AbaRouting)
    } else if in_aadhaar.contains(&h) {
        Some(Kind::Aadhaar)
    } else if de_tax_id.contains(&h) {
        Some(Kind::DeTaxId)
    } else if br_cpf.contains(&h) {
        Some(Kind::BrCpf)
    } else if ca_sin.contains(&h) {
        Some(Kind::CaSin)
    } else if bic.contains(&h) {
        Some(Kind::Bic)
    } else if passport.contains(&h) {
        Some(Kind::Passport)
    } else {
        None
    }
}

/// The fields of a line split at `sep`, as byte ranges (a field in double
/// quotes may hold the separator; the quotes are not part of the range). A
/// Markdown row's outer pipes (`| a | b |`) delimit no empty fields.
fn fields(line: &str, sep: u8) -> Vec<(usize, usize)> {
    let mut out = split_fields(line, sep);
    if sep == b'|' {
        let blank =
            |f: Option<&(usize, usize)>| f.is_some_and(|&(a, z)| line[a..z].trim().is_empty());
        if line.trim_start().starts_with('|') && blank(out.first()) {
            out.remove(0);
        }
        if line.trim_end().ends_with('|') && out.len() > 1 && blank(out.last()) {
            out.pop();
        }
    }
    out
}

fn split_fields(line: &str, sep: u8) -> Vec<(usize, usize)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        // Skip spaces before the field.
        let mut start = i;
        while start < b.len() && b[start] == b' ' {
            start += 1;
        }
        if start < b.len() && b[start] == b'"' {
            let open = start + 1;
            let close = line[open..].find('"').map_or(b.len(), |n| open + n);
            out.push((open, close));
            let next = line[close.min(b.len())..]
                .find(char::from(sep))
                .map(|n| close + n);
            match next {
                Some(n) => i = n + 1,
                None => return out,
            }
        } else {
            let end = line[i..].find(char::from(sep)).map_or(b.len(), |n| i + n);
            out.push((i, end));
            if end >= b.len() {
                return out;
            }
            i = end + 1;
        }
    }
}

/// Every value in a named column of a table in `text`: kind and byte
/// range, for the kinds in `enabled`.
pub fn find(text: &str, enabled: &[Kind]) -> Vec<(Kind, usize, usize)> {
    let mut out = Vec::new();
    if !text.contains('\n') {
        return out;
    }
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let mut at = 0;
    for line in text.split('\n') {
        lines.push((at, line.strip_suffix('\r').unwrap_or(line)));
        at += line.len() + 1;
    }
    let mut i = 0;
    while i + 1 < lines.len() {
        let (_, header) = lines[i];
        let Some((sep, columns)) = header_of(header, enabled) else {
            i += 1;
            continue;
        };
        let width = fields(header, sep).len();
        let mut j = i + 1;
        while j < lines.len() {
            let (offset, row) = lines[j];
            let rule = !row.trim().is_empty() && row.bytes().all(|c| b"-+=|: \t".contains(&c));
            if rule && j == i + 1 {
                // The line under a header in psql or Markdown output.
                j += 1;
                continue;
            }
            let cells = fields(row, sep);
            if cells.len() != width {
                break;
            }
            for &(col, kind) in &columns {
                let (a, z) = cells[col];
                // SQL `VALUES ('Bérénice', 'Carpentier', ...)`: quotes
                // and brackets are not part of the value.
                let cell = &row[a..z];
                let value = unwrap_sql(cell);
                let fits = match kind {
                    // A phone column's field is a number: digits and the
                    // usual separators, seven digits or more.
                    Kind::Phone => {
                        value.bytes().filter(u8::is_ascii_digit).count() >= 7
                            && value
                                .bytes()
                                .all(|c| c.is_ascii_digit() || b"+-/(). ".contains(&c))
                    }
                    Kind::Person | Kind::Dob | Kind::Address => {
                        value.chars().any(char::is_alphanumeric)
                    }
                    id => id_fits(id, value),
                };
                if fits && !value.is_empty() {
                    let lead = cell.find(value).unwrap_or(0);
                    out.push((kind, offset + a + lead, offset + a + lead + value.len()));
                }
            }
            j += 1;
        }
        i = j.max(i + 1);
    }
    out
}

/// A field without what SQL puts around a value (`('Bérénice'`,
/// `'Carpentier');`): quotes, `;`, and a bracket that is not matched inside
/// it, so `(61) 4268-2268` keeps its own.
fn unwrap_sql(cell: &str) -> &str {
    let mut v = cell.trim();
    loop {
        let before = v.len();
        v = v.trim_matches(|c| matches!(c, '\'' | ';'));
        if let Some(rest) = v.strip_prefix('(').filter(|r| !r.contains(')')) {
            v = rest;
        }
        if let Some(rest) = v.strip_suffix(')').filter(|r| !r.contains('(')) {
            v = rest;
        }
        if v.len() == before {
            return v;
        }
    }
}

/// Whether a field of an id column is that id: its shape and check digits.
fn id_fits(kind: Kind, value: &str) -> bool {
    use crate::national_id as id;
    match kind {
        Kind::Ssn => crate::validate::ssn(value),
        Kind::AbaRouting => value.len() == 9 && id::aba_routing(value),
        Kind::Aadhaar => id::aadhaar(value),
        Kind::DeTaxId => id::de_tax_id(value),
        Kind::BrCpf => id::br_cpf(value),
        Kind::CaSin => id::ca_sin(value),
        Kind::Bic => id::bic(value),
        Kind::Passport => crate::validate::passport_number(value),
        _ => false,
    }
}

/// The separator and the columns of a header line, if it is one: two or
/// more short fields (three words at most, no `?` or `!`), one
/// of them a column of a kind in `enabled`.
fn header_of(line: &str, enabled: &[Kind]) -> Option<(u8, Vec<(usize, Kind)>)> {
    let sep = [b';', b'\t', b'|', b',']
        .into_iter()
        .find(|&s| line.as_bytes().contains(&s))?;
    if line.contains("\":") || line.contains("\" :") {
        // A line of JSON (`"first_name": "Petr",`), not a header.
        return None;
    }
    let cells = fields(line, sep);
    // Column names are short and are no sentence: "Name, address and
    // phone are required." is prose, not a header.
    // In `INSERT INTO t (a, b, c)` the first column starts after the `(`.
    let heading = |h: &str| {
        let h = h.rsplit('(').next().unwrap_or(h);
        !h.trim().is_empty()
            && h.len() <= 40
            && h.split_whitespace().count() <= 3
            && !h.contains(['?', '!'])
    };
    if cells.len() < 2 || !cells.iter().all(|&(a, z)| heading(&line[a..z])) {
        return None;
    }
    let columns: Vec<(usize, Kind)> = cells
        .iter()
        .enumerate()
        .filter_map(|(n, &(a, z))| column_kind(&line[a..z]).map(|k| (n, k)))
        .filter(|(_, k)| enabled.contains(k))
        .collect();
    (!columns.is_empty()).then_some((sep, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(&'static str, &str)> {
        find(text, &Kind::ALL)
            .into_iter()
            .map(|(k, a, z)| (k.as_str(), &text[a..z]))
            .collect()
    }

    #[test]
    fn named_columns_of_a_table() {
        let t = "nom;prénom;date_naissance;iban\nGou;Zihan;10/12/1979;FR76 3000\nRuiz de Azúa;Alejandro;14/10/1943;BE94\n\nnext paragraph";
        assert_eq!(
            values(t),
            vec![
                ("person", "Gou"),
                ("person", "Zihan"),
                ("dob", "10/12/1979"),
                ("person", "Ruiz de Azúa"),
                ("person", "Alejandro"),
                ("dob", "14/10/1943"),
            ]
        );
        let t = "id,full_name,email\n7960,rim ben ammar,r@x.com\n7509,\"Heikkilä, Tuomas\",t@y.fi";
        assert_eq!(
            values(t),
            vec![("person", "rim ben ammar"), ("person", "Heikkilä, Tuomas")]
        );
    }

    #[test]
    fn id_columns_count_when_their_check_digits_hold() {
        let t = "employee,routing_number,aadhaar,steuer_id\nA,243466304,234123412346,12345679998\nB,243466305,234123412345,12345679999";
        assert_eq!(
            values(t),
            vec![
                ("aba_routing", "243466304"),
                ("in_aadhaar", "234123412346"),
                ("de_tax_id", "12345679998"),
            ]
        );
    }

    #[test]
    fn markdown_tables() {
        let t = "| Applicant | DOB | Score |\n|---|---|---|\n| Samira Saleh | 06/14/1999 | 749 |";
        assert_eq!(
            values(t),
            vec![("person", "Samira Saleh"), ("dob", "06/14/1999")]
        );
    }

    #[test]
    fn other_tables_and_prose_are_left_alone() {
        for t in [
            "region,amount,currency\nEMEA,12,EUR",
            "We met, talked, and agreed.\nThen we left, happy.",
            "name;\nno separator on the next line",
            "Name, address and phone are required.\nPlease send them, thanks.",
            "Name, please?\nSure, thanks",
        ] {
            assert_eq!(values(t), vec![], "{t}");
        }
    }
}
