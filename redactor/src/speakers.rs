//! Speakers of a chat transcript: `eilidh: anyone know why ...`, `[10:32]
//! Daisuke: ty`, `étienne : j'ai collé ...`. A line that starts with one to
//! three words and a colon names who speaks. Such a label is a person when
//! one of its words is a known first name, or when the transcript has
//! another speaker who is one (a chat with "ngozi" and "eilidh" answering
//! "daisuke"); labels of logs and notes (`error:`, `note:`, `user:`,
//! `Summary:`) are ruled out by the cue lists and by the roles below.

/// Words that label a line without naming a person: roles of a transcript,
/// levels of a log, parts of a note or an e-mail.
const ROLES: &[&str] = &[
    "a",
    "q",
    "ai",
    "bot",
    "me",
    "you",
    "user",
    "users",
    "assistant",
    "system",
    "human",
    "agent",
    "customer",
    "client",
    "cliente",
    "kunde",
    "kundin",
    "support",
    "admin",
    "operator",
    "host",
    "guest",
    "moderator",
    "caller",
    "note",
    "notes",
    "todo",
    "fixme",
    "fyi",
    "nb",
    "ps",
    "re",
    "fwd",
    "subject",
    "from",
    "to",
    "cc",
    "bcc",
    "date",
    "time",
    "status",
    "error",
    "warning",
    "warn",
    "info",
    "debug",
    "trace",
    "fatal",
    "step",
    "update",
    "question",
    "answer",
    "summary",
    "action",
    "actions",
    "result",
    "results",
    "response",
    "request",
    "reply",
    "input",
    "output",
    "prompt",
    "context",
    "example",
    "task",
    "goal",
    "issue",
    "problem",
    "solution",
    "fix",
    "cause",
    "impact",
    "next steps",
    "decision",
    "owner",
    "reviewer",
    "team",
    "channel",
    "thread",
    "message",
    "body",
    "title",
    "name",
    "email",
    "phone",
    "address",
    "tel",
    "mobile",
    "iban",
    "bic",
    "amount",
    "total",
    "balance",
    "reason",
    "comment",
    "comments",
    "remarks",
    "details",
    "description",
    "priority",
    "severity",
    "category",
    "type",
    "source",
    "target",
    "env",
    "url",
    "path",
    "file",
    "line",
    "code",
    "key",
    "value",
    "id",
    "ref",
    "objet",
    "betreff",
    "asunto",
    "assunto",
    "datum",
    "fecha",
    "data",
    "hinweis",
    "nota",
    "remarque",
    "resumen",
    "resumo",
    "zusammenfassung",
    "résumé",
    "agente",
    "atendente",
    "sachbearbeiter",
    "conseiller",
    "conseillère",
    "usuario",
    "usuário",
    "utilisateur",
    "benutzer",
    "sistema",
    "système",
    "author",
    "committer",
    "reporter",
    "assignee",
    "approver",
    "requester",
    "sender",
    "recipient",
    "autor",
    "auteur",
];

/// A speaker label at a line start: its span and its words' spans.
struct Label {
    start: usize,
    end: usize,
    words: Vec<(usize, usize)>,
}

/// The label at the start of the line beginning at `at`, if there is one:
/// a `[timestamp]` may come first; one to three words of letters (inner
/// `-`, `'`, `.`), an optional space, a colon, and a message of two words
/// or more. An indented line, or a key whose value is one word or on the
/// next line, is a key of a configuration (`  username: ledger_svc`).
fn label_at(text: &str, at: usize) -> Option<Label> {
    let line = &text[at..text[at..].find('\n').map_or(text.len(), |i| at + i)];
    let mut i = 0;
    if line.starts_with('[') {
        let close = line.find(']')?;
        i += close + 1;
        i += line[i..].len() - line[i..].trim_start().len();
    }
    let mut words = Vec::new();
    let mut j = i;
    loop {
        let w_start = j;
        j = word_end(line, j);
        if j == w_start {
            return None;
        }
        words.push((at + w_start, at + j));
        let after = &line[j..];
        // "agente (Raúl): ..." names the speaker in brackets after a role;
        // "thang (agent): ..." gives the role after the name.
        let bracket = after
            .strip_prefix(" (")
            .map(|_| (j + 2, word_end(line, j + 2)))
            .filter(|&(a, z)| z > a && line[z..].starts_with(')'));
        let colon_at = bracket.map_or(j, |(_, z)| z + 1);
        let after = &line[colon_at..];
        if after.starts_with(':') || after.starts_with(" :") {
            let colon = colon_at + after.find(':')?;
            let message = &line[colon + 1..];
            if !message.starts_with(char::is_whitespace)
                || message.split_whitespace().nth(1).is_none()
            {
                return None;
            }
            return Some(match bracket {
                Some((a, z)) if ROLES.contains(&line[i..j].to_lowercase().as_str()) => Label {
                    start: at + a,
                    end: at + z,
                    words: vec![(at + a, at + z)],
                },
                _ => Label {
                    start: at + i,
                    end: at + j,
                    words,
                },
            });
        }
        if !after.starts_with(' ') || words.len() == 3 {
            return None;
        }
        j += 1;
    }
}

/// The end of the word of letters that starts at byte `j` of `line` (`j`
/// itself if none does): inner `-`, `'` and `.` join letters.
fn word_end(line: &str, j: usize) -> usize {
    let mut end = j;
    let mut chars = line[j..].char_indices().peekable();
    while let Some((k, c)) = chars.next() {
        let next_letter = chars.peek().is_some_and(|&(_, n)| n.is_alphabetic());
        let ok = c.is_alphabetic()
            || (k > 0 && (is_mark(c) || (matches!(c, '-' | '\'' | '’' | '.') && next_letter)));
        if !ok {
            break;
        }
        end = j + k + c.len_utf8();
    }
    end
}

fn is_mark(c: char) -> bool {
    matches!(c, '\u{300}'..='\u{36f}')
}

/// Every speaker label of `text` that names a person, outside the `skip`
/// ranges, as byte ranges, left to right. `first_name(word)` says whether a
/// word is a known first name that is no everyday word; `listed(word)`
/// whether it is a cue or a word that is never a name.
pub(crate) fn find(
    text: &str,
    skip: &[(usize, usize)],
    first_name: impl Fn(&str) -> bool,
    listed: impl Fn(&str) -> bool,
) -> Vec<(usize, usize)> {
    if !text.contains(':') {
        return Vec::new();
    }
    let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1));
    let labels: Vec<Label> = starts
        .filter(|&at| at < text.len())
        .filter_map(|at| label_at(text, at))
        .filter(|l| !skip.iter().any(|&(a, z)| a < l.end && l.start < z))
        .filter(|l| {
            let whole = text[l.start..l.end].to_lowercase();
            !ROLES.contains(&whole.as_str())
                && l.words.iter().all(|&(a, z)| {
                    let w = text[a..z].to_lowercase();
                    (!ROLES.contains(&w.as_str()) && !listed(&w) && !w.contains('.'))
                        || first_name(&w)
                })
                // A label in capitals is a heading ("NOTE:", "WARNUNG:").
                && text[l.start..l.end].chars().any(char::is_lowercase)
        })
        .collect();
    let named = |l: &Label| l.words.iter().any(|&(a, z)| first_name(&text[a..z]));
    let transcript = labels.iter().any(named) && {
        let mut who: Vec<String> = labels
            .iter()
            .map(|l| text[l.start..l.end].to_lowercase())
            .collect();
        who.sort();
        who.dedup();
        who.len() >= 2
    };
    labels
        .iter()
        .filter(|l| named(l) || (transcript && l.words.len() == 1))
        .map(|l| (l.start, l.end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speakers(text: &str) -> Vec<&str> {
        let first = |w: &str| {
            ["daisuke", "federica", "élodie", "anna", "raúl"].contains(&w.to_lowercase().as_str())
        };
        let listed = |w: &str| ["hi", "thanks"].contains(&w);
        find(text, &[], first, listed)
            .into_iter()
            .map(|(a, z)| &text[a..z])
            .collect()
    }

    #[test]
    fn speakers_of_a_transcript_are_people() {
        assert_eq!(
            speakers("daisuke: anyone know why?\nngozi: secret rotated\ndaisuke: ty all"),
            ["daisuke", "ngozi", "daisuke"]
        );
        assert_eq!(speakers("[10:32] Federica: ok then"), ["Federica"]);
        assert_eq!(speakers("élodie : qqn peut rappeler ?"), ["élodie"]);
        assert_eq!(speakers("anna smith: done now"), ["anna smith"]);
        assert_eq!(
            speakers("agente (Raúl): disculpe las molestias\ncliente: vale gracias"),
            ["Raúl"]
        );
        assert_eq!(
            speakers("[14:43] daisuke (agent): thanks for holding"),
            ["daisuke"]
        );
    }

    #[test]
    fn labels_of_logs_and_notes_are_not() {
        for t in [
            "error: connection refused\nwarn: retrying",
            "Note: the card was blocked\nSummary: refund",
            "user: hello\nassistant: hi",
            "eilidh: alone, no known name in the chat",
            "NOTE: Anna: x",
            "Anna:x",
            "http://example.com: down",
            "one two three four: x y",
            "federica:\n  anna: ledger_svc\nanna: one",
            "  anna: two words",
        ] {
            assert_eq!(speakers(t), Vec::<&str>::new(), "{t}");
        }
    }
}
