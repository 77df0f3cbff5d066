//! Person names in free text, found with gazetteers and context cues: no
//! model, no download, one pass over the words of a text.
//!
//! - The gazetteers (`redactor/data/*.txt`, built by `make_gazetteers.py`)
//!   hold about 21,000 first names and 24,000 last names: the US Census
//!   1990 name files (public domain) and the person names of every Latin-
//!   script locale of Faker (MIT licence), everyday words left out.
//! - A name is a run of one to four capitalised words (with particles such
//!   as "van der", "de la", "da"). It is taken when a cue says so (a title:
//!   "Mr", "Frau", "Mme", "Sra."; a greeting: "Hi", "Dear", "Hallo",
//!   "Bonjour", "Hola", "Olá"; a label: "customer", "Kunde", "nom",
//!   "cliente"), or without a cue when a known first name is followed by a
//!   last name, or a known last name follows a capitalised word. After a
//!   cue, lower-case names from the gazetteers are taken too ("hi john").
//! - Names that are also everyday words ("May", "Will", "Rose", "Green")
//!   count only beside another known name or a cue. Company names, models
//!   and places built from names ("Morgan Stanley", "Black-Scholes",
//!   "Monte Carlo", "San Diego") are not people.

use std::collections::HashMap;

use foldhash::fast::FixedState;
use std::sync::LazyLock;

const FIRST_NAMES: &str = include_str!("../data/first_names.txt");
const LAST_NAMES: &str = include_str!("../data/last_names.txt");

/// Known as a first name.
const FIRST: u16 = 1;
/// Known as a last name.
const LAST: u16 = 2;
/// Also an everyday word: a name only beside another known name or a cue.
const AMBIGUOUS: u16 = 4;
/// Never part of a name (a product, a place, a word the gazetteers hold).
const STOP: u16 = 8;
/// A title: "Mr", "Frau", "Mme".
const TITLE: u16 = 16;
/// A greeting or sign-off: "Hi", "Dear", "Hallo".
const GREETING: u16 = 32;
/// A label or verb a name follows: "customer", "from", "nom".
const LABEL: u16 = 64;
/// A particle inside a name: "van", "de".
const PARTICLE: u16 = 128;
/// A preposition or verb a known name follows: "from", "with", "para".
const VERB: u16 = 256;
/// A sign-off: a name follows, also on the next line ("Thanks,\nAnna").
const SIGNOFF: u16 = 512;
/// A field for a name: any capitalised words that follow are one
/// ("Name:", "first_name=", "nom :").
const NAME_LABEL: u16 = 1024;
/// A preposition: a known first name, or a known first and last name
/// (also in lower case), follows ("de thiago nogueira", "to Sofia").
const PREP: u16 = 2048;

/// Fields and labels that hold a name.
const NAME_LABELS: &[&str] = &[
    "bénéficiaire",
    "attendees",
    "participants",
    "teilnehmer",
    "asistentes",
    "participantes",
    "requester",
    "guarantor",
    "borrower",
    "bearbeiter",
    "antragsteller",
    "solicitante",
    "demandeur",
    "emprunteur",
    "garant",
    "avalista",
    "fiador",
    "reporter",
    "assignee",
    "owner",
    "name",
    "firstname",
    "lastname",
    "fullname",
    "surname",
    "forename",
    "vorname",
    "nachname",
    "nom",
    "prénom",
    "nombre",
    "apellido",
    "apellidos",
    "nome",
    "sobrenome",
    "cognome",
    "holder",
    "cardholder",
    "beneficiary",
    "payee",
    "titular",
    "titulaire",
    "inhaber",
    "kontoinhaber",
    "ansprechpartner",
    "signed",
    "signature",
    "unterschrift",
    "intestatario",
    "titolare",
];

/// Prepositions and conjunctions a name may follow.
const PREPS: &[&str] = &[
    "soy", "sou", "sono", "suis", "heiße", "heisse", "llamo", "chamo", "chiamo", "named", "de",
    "do", "da", "dos", "das", "del", "di", "du", "of", "for", "to", "and", "und", "et", "e", "y",
    "para", "pour", "für", "per", "a", "à", "an", "at", "laut", "selon", "según", "segundo",
    "secondo", "via", "sobre", "about", "über",
];

/// Sign-offs (also greetings).
const SIGNOFFS: &[&str] = &[
    "vg",
    "lg",
    "mfg",
    "kr",
    "br",
    "groet",
    "groeten",
    "regards",
    "cheers",
    "thanks",
    "best",
    "grüße",
    "gruß",
    "gruss",
    "danke",
    "merci",
    "cordialement",
    "saludos",
    "saludo",
    "gracias",
    "atenciosamente",
    "obrigado",
    "obrigada",
    "grazie",
    "abraços",
    "abraço",
    "abrazos",
    "abrazo",
    "saluti",
    "bises",
    "bisous",
    "beijos",
    "besos",
    "valeu",
    "sincerely",
    "yours",
    "thx",
    "ty",
];

/// Names that are everyday words in one of the five languages.
const AMBIGUOUS_WORDS: &[&str] = &[
    "vitória",
    "marion",
    "lorenz",
    "concepción",
    "rosario",
    "vittoria",
    "marsala",
    "destiny",
    "liberty",
    "will",
    "may",
    "mark",
    "bill",
    "frank",
    "grant",
    "rose",
    "hope",
    "faith",
    "joy",
    "grace",
    "dawn",
    "ray",
    "guy",
    "art",
    "pat",
    "jack",
    "max",
    "don",
    "sue",
    "ben",
    "rich",
    "young",
    "king",
    "long",
    "white",
    "black",
    "brown",
    "green",
    "gray",
    "grey",
    "hall",
    "wood",
    "stone",
    "hill",
    "price",
    "summer",
    "june",
    "april",
    "august",
    "sun",
    "star",
    "sky",
    "rock",
    "river",
    "lake",
    "moon",
    "snow",
    "storm",
    "rain",
    "chance",
    "case",
    "law",
    "lord",
    "major",
    "prince",
    "earl",
    "duke",
    "royal",
    "justice",
    "cash",
    "sterling",
    "page",
    "card",
    "bird",
    "fox",
    "wolf",
    "bear",
    "lamb",
    "hunter",
    "fisher",
    "baker",
    "cook",
    "bishop",
    "knight",
    "lance",
    "miles",
    "wade",
    "drew",
    "reed",
    "field",
    "fields",
    "banks",
    "cross",
    "bush",
    "rush",
    "mars",
    "angel",
    "baby",
    "honey",
    "sunny",
    "cherry",
    "ruby",
    "amber",
    "crystal",
    "jade",
    "pearl",
    "ivy",
    "holly",
    "lily",
    "daisy",
    "violet",
    "iris",
    "olive",
    "hazel",
    "heather",
    "autumn",
    "harmony",
    "melody",
    "destiny",
    "love",
    "gold",
    "silver",
    "steel",
    "key",
    "street",
    "church",
    "house",
    "bell",
    "lane",
    "north",
    "south",
    "east",
    "west",
    "worth",
    "post",
    "sharp",
    "swift",
    "bright",
    "early",
    "free",
    "strong",
    "short",
    "small",
    "little",
    "klein",
    "gross",
    "groß",
    "lange",
    "kurz",
    "stark",
    "neu",
    "schwarz",
    "weiss",
    "weiß",
    "braun",
    "fuchs",
    "vogel",
    "koch",
    "jung",
    "fromm",
    "ehrlich",
    "blanc",
    "petit",
    "grand",
    "gros",
    "roux",
    "noir",
    "brun",
    "rosa",
    "luz",
    "paz",
    "sol",
    "mar",
    "cruz",
    "santos",
    "blanco",
    "negro",
    "rojo",
    "bravo",
    "mora",
    "flores",
    "campos",
    "costa",
    "lima",
    "mayor",
    "sales",
    "more",
    "best",
    "good",
    "new",
    "watson",
    "jenkins",
    "kafka",
    "alexa",
    "victoria",
    "florence",
    "lincoln",
    "jordan",
    "georgia",
    "virginia",
    "carolina",
    "dallas",
    "austin",
    "houston",
    "denver",
    "chase",
    "morgan",
    "sage",
    "nova",
    "stanley",
    "monday",
    "friday",
    "sunday",
    "well",
    "herbst",
    "winter",
    "sommer",
    "frost",
    "hart",
    "gay",
    "mercedes",
    "romeo",
    "carlo",
    "ford",
    "charlotte",
    "sydney",
    "adelaide",
    "alexandria",
    "nancy",
    "lourdes",
    "jackson",
    "hamilton",
    "wellington",
    "pascal",
    "ada",
    "chanel",
    "hermès",
    "amparo",
    "savannah",
    "madison",
    "phoenix",
    "orlando",
    "raleigh",
    "chelsea",
    "kingston",
    "regina",
    "brighton",
    "lorraine",
    "valencia",
    "santiago",
    "salvador",
    "natal",
    "victoria",
    "florence",
    "lincoln",
];

/// Never part of a name: products, places, titles and words the name lists
/// hold by accident.
const STOP_WORDS: &[&str] = &[
    "codice",
    "fiscale",
    "loan",
    "alta",
    "markt",
    "floor",
    "flat",
    "add",
    "review",
    "manual",
    "ihrem",
    "ihren",
    "konto",
    "service",
    "lending",
    "loans",
    "mortgage",
    "mortgages",
    "oetker",
    "porsche",
    "bosch",
    "siemens",
    "numbers",
    "column",
    "table",
    "alter",
    "drop",
    "create",
    "index",
    "date",
    "pan",
    "treasury",
    "payments",
    "collections",
    "accounts",
    "onboarding",
    "kyc",
    "fraud",
    "equipa",
    "apoio",
    "sud",
    "nord",
    "norte",
    "arbor",
    "claude",
    "julia",
    "gemini",
    "llama",
    "mistral",
    "falcon",
    "dolly",
    "cortana",
    "jarvis",
    "bard",
    "grok",
    "copilot",
    "devin",
    "siri",
    "django",
    "flask",
    "rails",
    "docker",
    "kubernetes",
    "apache",
    "spark",
    "airflow",
    "pandas",
    "polars",
    "kibana",
    "grafana",
    "prometheus",
    "loki",
    "tempo",
    "jaeger",
    "ollama",
    "cohere",
    "visa",
    "stripe",
    "plaid",
    "adyen",
    "klarna",
    "revolut",
    "monzo",
    "wise",
    "santander",
    "barclays",
    "citi",
    "fidelity",
    "vanguard",
    "bloomberg",
    "reuters",
    "morningstar",
    "moody",
    "fitch",
    "paris",
    "london",
    "berlin",
    "madrid",
    "lisbon",
    "lisboa",
    "rome",
    "roma",
    "milan",
    "milano",
    "munich",
    "münchen",
    "hamburg",
    "lyon",
    "marseille",
    "porto",
    "sevilla",
    "valencia",
    "barcelona",
    "boston",
    "chicago",
    "texas",
    "florida",
    "california",
    "washington",
    "york",
    "jersey",
    "europe",
    "america",
    "asia",
    "africa",
    "india",
    "china",
    "japan",
    "israel",
    "france",
    "germany",
    "spain",
    "italy",
    "brazil",
    "brasil",
    "canada",
    "mexico",
    "england",
    "ireland",
    "wales",
    "scotland",
    "january",
    "february",
    "march",
    "july",
    "september",
    "october",
    "november",
    "december",
    "januar",
    "februar",
    "juni",
    "juli",
    "oktober",
    "dezember",
    "janvier",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "enero",
    "abril",
    "mayo",
    "junio",
    "julho",
    "maggio",
    "tuesday",
    "wednesday",
    "thursday",
    "saturday",
    "montag",
    "freitag",
    "lundi",
    "mardi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
    "lunes",
    "martes",
    "viernes",
    "domingo",
    "sir",
    "madam",
    "team",
    "customer",
    "client",
    "support",
    "admin",
    "user",
    "all",
    "everyone",
    "there",
    "world",
    "folks",
    "guys",
    "colleagues",
    "kollegen",
    "collègues",
    "equipo",
    "equipe",
    "gmbh",
    "inc",
    "ltd",
    "llc",
    "plc",
    "bank",
    "capital",
    "partners",
    "group",
    "holdings",
    "christmas",
    "easter",
    "bayes",
    "markov",
    "gauss",
    "fourier",
    "kalman",
    "newton",
    "euler",
    "poisson",
    "bernoulli",
    "nash",
    "sharpe",
    "sortino",
    "treynor",
    "vasicek",
    "heston",
    "merton",
    "scholes",
    "bollinger",
    "fibonacci",
    "pareto",
    "gini",
    "kelly",
    "wiener",
    "ito",
    "laplace",
    "cauchy",
    "student",
    "pearson",
    "spearman",
    "kendall",
    "jensen",
    "shapley",
    "turing",
    "helm",
    "friends",
    "partner",
    "community",
    "users",
    "members",
    "staff",
    "devs",
    "developers",
    "ladies",
    "gentlemen",
    "damen",
    "herren",
    "mesdames",
    "messieurs",
    "señores",
    "senhores",
    "amigos",
    "todos",
    "tous",
    "zusammen",
    "leute",
    "allerseits",
    "again",
    "google",
    "amazon",
    "microsoft",
    "apple",
    "meta",
    "openai",
    "anthropic",
    "success",
    "portal",
    "service",
    "services",
    "financial",
    "finance",
    "operations",
    "risk",
    "billing",
    "sales",
    "marketing",
    "engineering",
    "legal",
    "compliance",
    "security",
    "product",
    "hr",
    "it",
    "ops",
    "board",
    "english",
    "german",
    "french",
    "spanish",
    "portuguese",
    "italian",
    "dutch",
    "chinese",
    "japanese",
    "korean",
    "indian",
    "american",
    "british",
    "european",
    "brazilian",
    "mexican",
    "canadian",
    "swiss",
    "austrian",
    "polish",
    "russian",
    "arabic",
    "turkish",
    "greek",
    "irish",
    "scottish",
    "welsh",
    "african",
    "asian",
    "latin",
    "deutsch",
    "français",
    "español",
    "português",
    "italiano",
    "the",
    "your",
    "our",
    "ihr",
    "ihre",
    "unser",
    "unsere",
    "votre",
    "notre",
    "l'équipe",
    "équipe",
    "team",
    "desk",
    "servicedesk",
    "service-team",
    "kolleginnen",
    "colleghi",
    "colegas",
    "hiring",
    "valid",
    "thru",
    "présidente",
    "président",
    "directeur",
    "directrice",
    "presidente",
    "director",
    "directora",
    "chatgpt",
    "gpt",
    "avenue",
    "street",
    "road",
    "lane",
    "drive",
    "boulevard",
    "parkway",
    "terrace",
    "creek",
    "straße",
    "sankt",
    "janeiro",
    "fevereiro",
    "março",
    "junho",
    "julho",
    "setembro",
    "outubro",
    "dezembro",
    "unknown",
    "anonymous",
    "n/a",
    "not",
    "null",
    "none",
    "true",
    "false",
    "nan",
    "select",
    "insert",
    "update",
    "delete",
    "values",
    "varchar",
    "primary",
    "default",
    "ufficio",
    "time",
    "clients",
    "equipo",
    "departamento",
    "abteilung",
    "büro",
    "bureau",
    "cellule",
    "pôle",
    "direction",
    "servizio",
    "atendimento",
    "kundenservice",
    "intestatario",
    "titolare",
];

/// Words after which a name is certain to follow (titles and forms of
/// address). The title itself is not part of the name.
const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "professor",
    "sir",
    "dame",
    "lady",
    "herr",
    "herrn",
    "frau",
    "fräulein",
    "monsieur",
    "madame",
    "mademoiselle",
    "mme",
    "mlle",
    "señor",
    "señora",
    "señorita",
    "sr",
    "sra",
    "srta",
    "dra",
    "doña",
    "senhor",
    "senhora",
    "sig",
    "m",
    "seu",
    "dona",
    "sigra",
    "mrs",
    "madame",
    "maître",
    "me",
    "signor",
    "signora",
    "signorina",
    "dott",
    "dottssa",
    "ing",
    "avv",
];

/// Greetings and sign-offs: a name follows (lower case allowed).
const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "dear",
    "hallo",
    "liebe",
    "lieber",
    "moin",
    "servus",
    "bonjour",
    "salut",
    "coucou",
    "cher",
    "chère",
    "hola",
    "estimado",
    "estimada",
    "querido",
    "querida",
    "olá",
    "ola",
    "oi",
    "prezado",
    "prezada",
    "caro",
    "cara",
    "ciao",
    "salve",
    "gentile",
    "buongiorno",
    "thanks",
    "danke",
    "merci",
    "gracias",
    "obrigado",
    "obrigada",
    "grazie",
    "regards",
    "cheers",
    "grüße",
    "gruß",
    "cordialement",
    "saludos",
    "atenciosamente",
    "abraços",
    "geehrte",
    "geehrter",
    "dia",
    "días",
    "tag",
    "morning",
    "afternoon",
    "evening",
    "bonsoir",
    "hej",
    "hoi",
    "namaste",
];

/// Labels after which a name is taken, also one not in the gazetteers
/// when it has two capitalised words (lower case allowed for known names).
const LABELS: &[&str] = &[
    "name",
    "names",
    "customer",
    "client",
    "contact",
    "applicant",
    "borrower",
    "guarantor",
    "cosigner",
    "cardholder",
    "holder",
    "owner",
    "beneficiary",
    "payee",
    "recipient",
    "sender",
    "employee",
    "patient",
    "agent",
    "manager",
    "signed",
    "assigned",
    "approved",
    "requested",
    "reported",
    "attn",
    "attention",
    "kunde",
    "kundin",
    "vorname",
    "nachname",
    "ansprechpartner",
    "inhaber",
    "kontoinhaber",
    "antragsteller",
    "mitarbeiter",
    "nom",
    "prénom",
    "cliente",
    "titulaire",
    "demandeur",
    "nombre",
    "apellido",
    "apellidos",
    "titular",
    "solicitante",
    "nome",
    "sobrenome",
    "beneficiário",
    "beneficiario",
    "contato",
    "contacto",
    "user",
];

/// Prepositions and verbs after which a known first name, or a known name
/// of two words, is taken.
const VERBS: &[&str] = &[
    "from", "by", "with", "cc", "called", "call", "ask", "tell", "told", "met", "emailed", "von",
    "mit", "avec", "con", "com",
];

/// Words that follow a company, a model or a place named after people.
const NOT_AFTER: &[&str] = &[
    "inc",
    "llc",
    "ltd",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "sarl",
    "spa",
    "bv",
    "nv",
    "co",
    "corp",
    "corporation",
    "company",
    "group",
    "holdings",
    "bank",
    "capital",
    "partners",
    "securities",
    "associates",
    "brothers",
    "bros",
    "foundation",
    "fund",
    "university",
    "college",
    "hospital",
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "straße",
    "strasse",
    "platz",
    "weg",
    "allee",
    "boulevard",
    "square",
    "airport",
    "station",
    "bridge",
    "center",
    "centre",
    "institute",
    "museum",
    "stadium",
    "county",
    "city",
    "beach",
    "school",
    "model",
    "ratio",
    "formula",
    "equation",
    "method",
    "filter",
    "regression",
    "estimator",
    "test",
    "criterion",
    "bands",
    "distribution",
    "process",
    "curve",
    "index",
    "score",
    "algorithm",
    "transform",
    "effect",
    "theorem",
    "scale",
    "award",
    "prize",
    "act",
    "library",
    "hotel",
    "manager",
    "team",
    "desk",
    "department",
    "office",
    "credit",
    "motor",
    "motors",
    "financial",
    "finance",
    "insurance",
    "airlines",
    "pharma",
    "labs",
    "technologies",
    "systems",
];

/// Words before a place or institution named after people.
const NOT_BEFORE: &[&str] = &[
    "mount",
    "mt",
    "saint",
    "st",
    "ste",
    "san",
    "santa",
    "são",
    "lake",
    "fort",
    "port",
    "cape",
    "rue",
    "calle",
    "avenida",
    "rua",
    "via",
    "piazza",
    "avenue",
    "boulevard",
    "place",
    "plaza",
    "platz",
    "university",
    "hotel",
    "club",
    "hurricane",
    "operation",
    "project",
    "team",
    "sankt",
    "bad",
    "unter",
];

/// Particles inside a name: "Ludwig van Beethoven", "María de la Cruz".
const PARTICLES: &[&str] = &[
    "van", "von", "der", "den", "de", "la", "le", "da", "das", "do", "dos", "del", "della", "di",
    "du", "bin", "ibn", "al", "el", "ben", "ter", "ten", "zu", "dal", "lo", "af", "av", "ó", "st",
];

/// Companies and models whose words are all names.
const NOT_PEOPLE: &[&str] = &[
    "casas bahia",
    "yves rocher",
    "louis vuitton",
    "hugo boss",
    "massimo dutti",
    "albert heijn",
    "morgan stanley",
    "goldman sachs",
    "wells fargo",
    "charles schwab",
    "lehman brothers",
    "merrill lynch",
    "bear stearns",
    "dow jones",
    "edward jones",
    "raymond james",
    "grant thornton",
    "fannie mae",
    "freddie mac",
    "sallie mae",
    "louis vuitton",
    "christian dior",
    "calvin klein",
    "ralph lauren",
    "tommy hilfiger",
    "hugo boss",
    "estée lauder",
    "walt disney",
    "harley davidson",
    "rolls royce",
    "aston martin",
    "tim hortons",
    "johnnie walker",
    "jack daniels",
    "jack daniel's",
    "kaplan meier",
    "fama french",
    "black scholes",
    "monte carlo",
    "van gogh",
    "dr pepper",
    "ernst young",
    "john deere",
    "st james",
    "marks spencer",
    "morgan chase",
    "mercedes benz",
    "julius bär",
    "julius baer",
    "ford credit",
    "ford motor",
    "unter den linden",
];

/// Every known word and its flags.
static WORDS: LazyLock<HashMap<&'static str, u16, FixedState>> = LazyLock::new(|| {
    let mut m: HashMap<&'static str, u16, FixedState> =
        HashMap::with_capacity_and_hasher(48_000, FixedState::default());
    for w in FIRST_NAMES.lines().filter(|w| !w.is_empty()) {
        *m.entry(w).or_default() |= FIRST;
    }
    for w in LAST_NAMES.lines().filter(|w| !w.is_empty()) {
        *m.entry(w).or_default() |= LAST;
    }
    for w in AMBIGUOUS_WORDS {
        *m.entry(w).or_default() |= AMBIGUOUS;
    }
    for (list, flag) in [
        (STOP_WORDS, STOP),
        (TITLES, STOP | TITLE),
        (GREETINGS, STOP | GREETING),
        (LABELS, STOP | LABEL),
        (VERBS, STOP | VERB),
        (SIGNOFFS, STOP | GREETING | SIGNOFF),
        (NAME_LABELS, STOP | LABEL | NAME_LABEL),
        (PREPS, STOP | PREP),
        (PARTICLES, PARTICLE),
    ] {
        for w in list {
            *m.entry(w).or_default() |= flag;
        }
    }
    m
});

/// For each first byte (ASCII lower-cased), a bit per byte length of the
/// cue words and particles starting with it: most words of a text are
/// ruled out as cues without a look-up.
static CUE_SHAPES: LazyLock<[u32; 256]> = LazyLock::new(|| {
    let mut t = [0u32; 256];
    for w in TITLES
        .iter()
        .chain(GREETINGS)
        .chain(LABELS)
        .chain(VERBS)
        .chain(PARTICLES)
        .chain(NAME_LABELS)
        .chain(PREPS)
    {
        t[usize::from(w.as_bytes()[0])] |= 1 << w.len().min(31);
    }
    t
});

/// Whether `w` may be a cue word or a particle.
fn cue_shaped(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() < 31 && CUE_SHAPES[usize::from(b[0].to_ascii_lowercase())] & (1 << b.len()) != 0
}

/// How many words the gazetteers and cue lists hold (loading them on the
/// first call).
pub fn gazetteer_len() -> usize {
    WORDS.len()
}

/// A word of the text: letters with inner apostrophes and hyphens, or an
/// initial (`J.`).
#[derive(Debug)]
struct Word {
    start: usize,
    end: usize,
    /// Whether it was looked up: lower-case words that can be neither a
    /// cue nor a name after one (most of a text's words) are not.
    looked: bool,
    /// Starts with an upper-case letter.
    cap: bool,
    /// Every letter upper case (two letters or more).
    caps: bool,
    /// A single letter followed by a dot.
    initial: bool,
    /// Its flags in the gazetteers and cue lists (0 when `lower` is empty).
    flags: u16,
}

fn words(text: &str, skip: &[(usize, usize)]) -> Vec<Word> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 6);
    let mut skip = skip.iter().peekable();
    // Whether the last three words were cue-shaped: the three words after a
    // cue are looked up.
    let (mut shaped1, mut shaped2, mut shaped3) = (false, false, false);
    let mut i = 0;
    while i < b.len() {
        let (c, len) = char_at(text, i);
        if !c.is_alphabetic() {
            i += len;
            continue;
        }
        let start = i;
        let mut end = i + len;
        while end < b.len() {
            let (d, dl) = char_at(text, end);
            let joiner = matches!(d, '\'' | '’' | '-')
                && end + dl < b.len()
                && char_at(text, end + dl).0.is_alphabetic();
            if d.is_alphabetic() || is_mark(d) || joiner {
                end += dl;
            } else {
                break;
            }
        }
        i = end;
        while skip.peek().is_some_and(|&&(_, z)| z <= start) {
            skip.next();
        }
        if skip.peek().is_some_and(|&&(a, _)| a < end) {
            (shaped1, shaped2, shaped3) = (false, false, false);
            continue;
        }
        let word = &text[start..end];
        let cap = c.is_uppercase();
        let one_letter = end == start + len;
        let initial = one_letter && b.get(end) == Some(&b'.');
        let caps = cap && !one_letter && !word.chars().any(char::is_lowercase);
        let shaped = !cap && cue_shaped(word);
        // Only capitalised words, cue-shaped words and the three words after
        // one are looked up.
        let looked = cap || shaped || shaped1 || shaped2 || shaped3;
        out.push(Word {
            start,
            end,
            looked,
            cap,
            caps,
            initial,
            flags: if looked { lookup(word) } else { 0 },
        });
        (shaped3, shaped2, shaped1) = (shaped2, shaped1, shaped);
    }
    out
}

/// The character at byte `i` of `text` (a character boundary) and its
/// length; ASCII without decoding.
fn char_at(text: &str, i: usize) -> (char, usize) {
    let c = text.as_bytes()[i];
    if c < 0x80 {
        (char::from(c), 1)
    } else {
        text[i..]
            .chars()
            .next()
            .map_or((char::REPLACEMENT_CHARACTER, 1), |c| (c, c.len_utf8()))
    }
}

/// A word in lower case, as the lists hold it.
fn lower(word: &str) -> String {
    let lower = if word.is_ascii() {
        word.to_ascii_lowercase()
    } else {
        word.to_lowercase()
    };
    if lower.contains('’') {
        lower.replace('’', "'")
    } else {
        lower
    }
}

/// The flags of a word as written (lower-cased here; a short ASCII word
/// without allocating).
fn lookup(word: &str) -> u16 {
    let b = word.as_bytes();
    if b.len() <= 32 && word.is_ascii() {
        let mut buf = [0u8; 32];
        for (d, c) in buf.iter_mut().zip(b) {
            *d = c.to_ascii_lowercase();
        }
        return std::str::from_utf8(&buf[..b.len()]).map_or(0, flags);
    }
    flags(&lower(word))
}

fn is_mark(c: char) -> bool {
    ('\u{300}'..='\u{36f}').contains(&c)
}

/// Flags of a word in the gazetteers (0 if unknown). Hyphenated names
/// ("Jean-Luc", "Smith-Jones") are known when every part is.
fn flags(lower: &str) -> u16 {
    if lower.is_empty() {
        return 0;
    }
    if let Some(&f) = WORDS.get(lower) {
        return f;
    }
    if let Some(stem) = strip_suffix(lower) {
        return flags(stem);
    }
    if lower.contains('-') {
        // "Jean-Luc" is a first name when every part is one; "Smith-Jones"
        // a last name when every part is known and the last is one.
        let (mut all_first, mut ambiguous, mut last_part) = (true, 0, 0);
        for part in lower.split('-') {
            let f = WORDS.get(part).copied().unwrap_or(0);
            if f & STOP != 0 {
                // "IT-Servicedesk", "Service-Team".
                return STOP;
            }
            if f & (FIRST | LAST) == 0 {
                return 0;
            }
            all_first &= f & FIRST != 0;
            ambiguous |= f & AMBIGUOUS;
            last_part = f;
        }
        let first = if all_first { FIRST } else { 0 };
        return first | (last_part & LAST) | ambiguous;
    }
    if noun_ending(lower) {
        return STOP;
    }
    0
}

/// Whether an unknown word ends as nouns of the five languages do and
/// names do not ("Kündigung", "Transaktion", "Dirección", "Aprovação").
fn noun_ending(lower: &str) -> bool {
    lower.chars().count() >= 7
        && [
            "ung", "ungen", "heit", "keit", "schaft", "tät", "tion", "ción", "ção", "ismus",
        ]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// Endings that are not part of a name: the possessive ("Sarah's") and
/// Japanese and Korean honorifics ("Ishikawa-san").
const SUFFIXES: &[&str] = &[
    "'s", "-san", "-sama", "-kun", "-chan", "-sensei", "-ssi", "-nim",
];

/// The word without a possessive or honorific ending, if it has one.
fn strip_suffix(lower: &str) -> Option<&str> {
    SUFFIXES
        .iter()
        .find_map(|s| lower.strip_suffix(s))
        .filter(|stem| !stem.is_empty())
}

/// `end` moved back before a possessive or honorific ending.
fn trim_suffix(text: &str, start: usize, end: usize) -> usize {
    let word = &text[start..end];
    for s in SUFFIXES.iter().copied().chain(["’s"]) {
        let n = word.len().saturating_sub(s.len());
        if word.is_char_boundary(n) && n > 0 && word[n..].eq_ignore_ascii_case(s) {
            return start + n;
        }
    }
    end
}

/// What the text right before a word says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cue {
    None,
    /// A title: any capitalised word that follows is a name.
    Title,
    /// A greeting: a known or capitalised name follows.
    Greeting,
    /// A label: a known name, or two capitalised words, follow.
    Label,
    /// A preposition or verb: a known first name, or a known name of two
    /// words, follows.
    Verb,
    /// A field for a name: any capitalised words that follow.
    NameLabel,
    /// A preposition: a known first name, or a known first and last name.
    Prep,
    /// An @-mention: a capitalised word right after `@`.
    Mention,
}

/// Whether only spaces and light punctuation lie between two words.
fn tight(gap: &str) -> bool {
    gap.len() <= 6
        && gap.chars().all(|c| {
            matches!(
                c,
                ' ' | '\t' | ',' | ':' | '.' | '-' | '=' | '"' | '\'' | '(' | '_'
            )
        })
}

fn cue(text: &str, w: &[Word], i: usize) -> Cue {
    let start = w[i].start;
    let b = text.as_bytes();
    let mention = start > 0
        && b[start - 1] == b'@'
        && (start < 2 || !b[start - 2].is_ascii_alphanumeric())
        && w[i].end > start + 1
        && b.get(w[i].end) != Some(&b'.');
    if mention && w[i].cap {
        return Cue::Mention;
    }
    if i == 0 {
        return Cue::None;
    }
    let p = &w[i - 1];
    let gap = &text[p.end..w[i].start];
    if !p.looked {
        return Cue::None;
    }
    if p.flags & SIGNOFF != 0 {
        let g = gap.trim_start_matches([',', '!', '.', ' ']);
        return if g.starts_with('\n') || g.starts_with("\r\n") || (tight(gap) && !gap.contains('.'))
        {
            Cue::Greeting
        } else {
            Cue::None
        };
    }
    if !tight(gap) || (gap.contains(['"', '\'']) && gap.contains(',')) {
        // A quote and a comma between them: the cue ends one field and the
        // word starts another (`"tool":"lookup_customer","trace_id"`).
        return Cue::None;
    }
    let f = p.flags;
    if gap.contains('.') && f & TITLE == 0 {
        // A full stop ends the cue's sentence ("... yesterday evening.
        // Summarise ..."); only a title is written with one ("Dr. Chen").
        return Cue::None;
    }
    if f & TITLE != 0 && (p.cap || p.caps) {
        // "Sehr geehrter Herr Müller": the title, not the greeting.
        Cue::Title
    } else if f & GREETING != 0 {
        Cue::Greeting
    } else if f & NAME_LABEL != 0 {
        Cue::NameLabel
    } else if f & LABEL != 0 {
        Cue::Label
    } else if f & VERB != 0 {
        Cue::Verb
    } else if f & PREP != 0 {
        Cue::Prep
    } else {
        Cue::None
    }
}

/// Whether the word starts a sentence (nothing but punctuation and space
/// since the last `.`, `!`, `?`, `:` or line break, or the text's start).
fn sentence_start(text: &str, start: usize) -> bool {
    for c in text[..start].chars().rev() {
        match c {
            '.' | '!' | '?' | ':' | '\n' | '\r' | '"' | '(' | '[' | '>' | '*' | '#' => return true,
            c if c.is_whitespace() || matches!(c, '\'' | '«' | '“' | '-') => {}
            _ => return false,
        }
    }
    true
}

/// Every person name in `text` outside the `skip` ranges (findings of
/// other kinds and tokens), as byte ranges, left to right.
pub fn find(text: &str, skip: &[(usize, usize)]) -> Vec<(usize, usize)> {
    if !text.chars().any(char::is_alphabetic) {
        return Vec::new();
    }
    let w = words(text, skip);
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < w.len() {
        // "attendees: Thijs Verhoeven, Raghav Bhatnagar, M. Dvořák and ...":
        // a name right after another, in a list, has the list's cue.
        let in_list = out.last().is_some_and(|&(_, end)| {
            matches!(
                &text[end..w[i].start],
                ", " | " and " | " und " | " et " | " y " | " e " | ", and " | " & " | "; "
            )
        });
        if !w[i].cap && !w[i].looked {
            i += 1;
            continue;
        }
        let bare_particle = w[i].flags & PARTICLE != 0 && w[i].flags & (FIRST | LAST) == 0;
        if w[i].cap && bare_particle && w.get(i + 1).is_some_and(|n| n.cap) {
            // "Lo Russo, Speranza": the particle joins the name that follows.
            i += 1;
            continue;
        }
        if let Some(j) = last_comma_first(text, &w, i).filter(|_| !in_list) {
            let start = with_particles(text, &w, i);
            out.push((start, trim_suffix(text, w[j].start, w[j].end)));
            i = j + 1;
            continue;
        }
        match name_at(text, &w, i, in_list) {
            Some(j) => {
                let start = with_particles(text, &w, i);
                out.push((start, trim_suffix(text, w[j].start, w[j].end)));
                i = j + 1;
            }
            None => i += 1,
        }
    }
    // The speakers of a chat transcript ("eilidh: anyone know ...").
    let first_name = |w: &str| {
        let f = lookup(w);
        f & FIRST != 0 && f & (STOP | AMBIGUOUS) == 0
    };
    let listed = |w: &str| {
        lookup(w)
            & (AMBIGUOUS | STOP | TITLE | GREETING | LABEL | VERB | SIGNOFF | NAME_LABEL | PREP)
            != 0
    };
    let speakers = crate::speakers::find(text, skip, first_name, listed);
    if !speakers.is_empty() {
        out.extend(
            speakers
                .into_iter()
                .filter(|&(a, z)| !out.iter().any(|&(s, e)| s < z && a < e))
                .collect::<Vec<_>>(),
        );
        out.sort_unstable();
    }
    out
}

/// The start of a name at word `i`, moved back over the particles of its
/// surname: "VON STETTEN Gudrun", "van der Heijden, Bram" at a line's or a
/// field's start.
fn with_particles(text: &str, w: &[Word], i: usize) -> usize {
    let mut k = i;
    while k > 0 {
        let p = &w[k - 1];
        let adjacent = &text[p.end..w[k].start] == " ";
        let ok = adjacent
            && p.flags & PARTICLE != 0
            && ((p.caps && w[i].caps)
                || ((!p.cap || p.flags & (FIRST | LAST) == 0) && {
                    // Lower-case particles only where a field starts.
                    let mut m = k - 1;
                    while m > 0
                        && w[m - 1].flags & PARTICLE != 0
                        && &text[w[m - 1].end..w[m].start] == " "
                    {
                        m -= 1;
                    }
                    text[..w[m].start].chars().next_back().is_none_or(|c| {
                        matches!(c, '\n' | ';' | ',' | ':' | '(' | '"' | '\'' | '\t')
                    })
                }));
        if !ok {
            break;
        }
        k -= 1;
    }
    w[k].start
}

/// A name written "Last, First" (CRM records, sorted lists) starting at
/// word `i`: a known last name, a comma, a known first name, one of them
/// not an everyday word.
fn last_comma_first(text: &str, w: &[Word], i: usize) -> Option<usize> {
    let (a, b) = (&w[i], w.get(i + 1)?);
    if !a.cap || !b.cap || &text[a.end..b.start] != ", " || a.caps != b.caps || b.end - b.start < 2
    {
        return None;
    }
    let (fa, fb) = (a.flags, b.flags);
    let clean = |x: u16| x & (STOP | AMBIGUOUS) == 0;
    let cued = matches!(
        cue(text, w, i),
        Cue::Label | Cue::NameLabel | Cue::Title | Cue::Greeting
    );
    let ok = fa & STOP == 0
        && fb & STOP == 0
        && ((fa & LAST != 0 && fb & FIRST != 0 && (clean(fa) || clean(fb)))
            // "Cliente: Mittermaier, Ursula": after a label, one known half.
            || (cued && ((fb & FIRST != 0 && clean(fb)) || (fa & LAST != 0 && clean(fa)))));
    // "Smith, John, and ..." is fine; "Smith, John Paul" takes both.
    let mut end = i + 1;
    if let Some(c) = w.get(i + 2) {
        if c.cap && &text[b.end..c.start] == " " && c.flags & FIRST != 0 {
            end = i + 2;
        }
    }
    ok.then_some(end)
}

/// The words of a candidate name: at most four.
struct Run {
    words: [usize; 4],
    len: usize,
}

impl Run {
    fn new(first: usize) -> Self {
        Self {
            words: [first, 0, 0, 0],
            len: 1,
        }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn push(&mut self, word: usize) {
        if self.len < 4 {
            self.words[self.len] = word;
            self.len += 1;
        }
    }
    fn as_slice(&self) -> &[usize] {
        &self.words[..self.len]
    }
}

/// The last word of a name starting at word `i`, if one does.
fn name_at(text: &str, w: &[Word], i: usize, in_list: bool) -> Option<usize> {
    let first = &w[i];
    let particle_after_title = !first.cap
        && first.flags & PARTICLE != 0
        && !matches!(
            &text[first.start..first.end],
            "der" | "den" | "ter" | "ten" | "zu"
        )
        && cue(text, w, i) == Cue::Title;
    if !first.cap && !particle_after_title && (!first.looked || !lower_after_cue(text, w, i)) {
        return None;
    }
    let cue = match cue(text, w, i) {
        Cue::None if in_list => Cue::Label,
        c => c,
    };
    let next_adjacent_cap = w
        .get(i + 1)
        .is_some_and(|n| n.cap && &text[first.end..n.start] == " ");
    let known_first = first.flags & (FIRST | LAST) != 0 && first.flags & STOP == 0;
    if first.caps
        && !next_adjacent_cap
        && !(matches!(cue, Cue::Title | Cue::NameLabel) && known_first)
    {
        // One word in capitals is an acronym ("Client NINO ...").
        return None;
    }
    // The run of name-shaped words: up to four, particles inside allowed.
    let mut run = Run::new(i);
    let mut k = i;
    while run.len() < 4 && k + 1 < w.len() {
        let gap = &text[w[k].end..w[k + 1].start];
        if !(gap == " " || (w[k].initial && gap == ". ")) {
            break;
        }
        let next = &w[k + 1];
        if next.flags & PARTICLE != 0 && !(next.cap && next.flags & (FIRST | LAST) != 0) {
            // A particle counts only when a capitalised word follows it.
            let mut m = k + 1;
            while m + 1 < w.len()
                && w[m + 1].flags & PARTICLE != 0
                && &text[w[m].end..w[m + 1].start] == " "
            {
                m += 1;
            }
            if m + 1 < w.len() && w[m + 1].cap && &text[w[m].end..w[m + 1].start] == " " {
                run.push(m + 1);
                k = m + 1;
                continue;
            }
            break;
        }
        let shaped = if first.cap || particle_after_title {
            // "CHOI Seo-yeon": a surname in capitals, then the first name.
            next.cap && (first.caps == next.caps || next.initial || (first.caps && k == i))
        } else {
            !next.cap
                && (next.flags & (FIRST | LAST) != 0
                    // "de fatima zahra benali est": an unknown lower-case
                    // word ends a name when the sentence goes on after it.
                    || (next.flags == 0 && next.end - next.start >= 3 && ends_name(text, w, k + 1)))
        };
        // An initial is no stop word ("Harriet M. Fletcher", "Imogen A.").
        if !shaped || (next.flags & STOP != 0 && !next.initial) {
            break;
        }
        run.push(k + 1);
        k += 1;
    }
    // Drop stop words from the end, and an initial left last.
    let run = run.as_slice();
    let mut flags_of = [0u16; 4];
    for (f, &x) in flags_of.iter_mut().zip(run) {
        *f = w[x].flags;
    }
    let f = &flags_of[..run.len()];
    if particle_after_title {
        // "Mr de Vries", "Madame van der Berg".
        return (run.len() > 1).then(|| run[run.len() - 1]);
    }
    if f[0] & STOP != 0 {
        return None;
    }
    let mut n = run.len();
    while n > 1 && (f[n - 1] & STOP != 0 || w[run[n - 1]].initial) {
        n -= 1;
    }
    let mut best = None;
    // The longest run that is a name.
    while n >= 1 {
        // "From: Ségolène Duchâtel <segolene@...>": a name before an address.
        let mail_follows = n >= 2
            && (0..n).all(|j| w[run[j]].cap)
            && text[w[run[n - 1]].end..].starts_with(" <")
            && text[w[run[n - 1]].end..]
                .split('>')
                .next()
                .is_some_and(|s| s.contains('@'));
        if mail_follows || accept(text, w, &run[..n], &f[..n], cue) {
            best = Some(run[n - 1]);
            break;
        }
        n -= 1;
    }
    let last = best?;
    if not_people(text, w, i, last) {
        return None;
    }
    Some(last)
}

/// Verbs and words that follow a name in a sentence.
const FOLLOWERS: &[&str] = &[
    "is", "was", "has", "had", "says", "said", "changed", "wants", "needs", "asked", "called",
    "paid", "est", "a", "était", "veut", "demande", "ist", "hat", "war", "möchte", "wurde", "está",
    "es", "tiene", "quiere", "pidió", "tem", "quer", "pediu", "é", "foi", "risulta", "è", "ha",
    "vuole", "chiede", "and", "und", "et", "y", "e",
];

/// Whether the name can end at word `k`: punctuation, the text's end or a
/// verb follows it.
fn ends_name(text: &str, w: &[Word], k: usize) -> bool {
    let rest = &text[w[k].end..];
    let Some(c) = rest.chars().next() else {
        return true;
    };
    if matches!(
        c,
        ',' | '.' | '?' | '!' | ';' | ')' | '\'' | '’' | '"' | '\n'
    ) {
        return true;
    }
    w.get(k + 1).is_some_and(|n| {
        &text[w[k].end..n.start] == " "
            && FOLLOWERS.contains(&lower(&text[n.start..n.end]).as_str())
    })
}

/// Whether a lower-case word may start a name: after a greeting or label.
fn lower_after_cue(text: &str, w: &[Word], i: usize) -> bool {
    matches!(
        cue(text, w, i),
        Cue::Greeting | Cue::Label | Cue::Title | Cue::Verb | Cue::NameLabel | Cue::Prep
    ) && w[i].flags & (FIRST | LAST) != 0
        && w[i].flags & (STOP | AMBIGUOUS) == 0
}

/// Whether the run's words follow each other with single spaces (no
/// particle skipped between them) and its cue word is in lower case (not
/// an article starting a sentence: "Das Depot von ...").
fn run_is_plain(text: &str, w: &[Word], run: &[usize]) -> bool {
    let first = run[0];
    let cue_lower = first > 0 && !w[first - 1].cap;
    cue_lower
        && run.windows(2).all(|p| {
            let gap = &text[w[p[0]].end..w[p[1]].start];
            p[1] == p[0] + 1 && (gap == " " || (w[p[0]].initial && gap == ". "))
        })
}

fn accept(text: &str, w: &[Word], run: &[usize], f: &[u16], cue: Cue) -> bool {
    let known = |x: u16| x & (FIRST | LAST) != 0 && x & STOP == 0;
    let clean = |x: u16| known(x) && x & AMBIGUOUS == 0;
    let initial = |j: usize| w[run[j]].initial;
    let n = run.len();
    let capitalised = (0..n).all(|j| w[run[j]].cap);
    let particle = |j: usize| f[j] & PARTICLE != 0;
    if n == 1 && (w[run[0]].end - w[run[0]].start < 2 || f[0] & PARTICLE != 0) {
        // `last_name = 'X'`: one letter is no name; nor "Le" alone ("Le
        // service clients").
        return false;
    }
    // "Harpreet N. Patel", "Vikram M. Bhattacharya": capitalised words around
    // middle initials, one of them a known name, none an everyday word.
    if n >= 3
        && capitalised
        && !initial(0)
        && (1..n - 1).all(initial)
        && f[0] & (STOP | AMBIGUOUS) == 0
        && f[n - 1] & (STOP | AMBIGUOUS) == 0
        && (known(f[0]) || known(f[n - 1]))
    {
        return true;
    }
    match cue {
        Cue::Title | Cue::NameLabel | Cue::Mention => return w[run[0]].cap || known(f[0]),
        // "Spoke with Wenjie Shangguan", "addressed to Venkatesh
        // Subramaniam": two capitalised words, none an everyday one.
        Cue::Verb | Cue::Prep
            if n >= 2
                && capitalised
                && (0..n).all(|j| f[j] & (STOP | AMBIGUOUS) == 0 || initial(j))
                && (cue == Cue::Verb || (0..n).any(|j| known(f[j])))
                && run_is_plain(text, w, run) =>
        {
            return true
        }
        Cue::Prep if n == 1 => return clean(f[0]) && f[0] & FIRST != 0,
        Cue::Prep => {
            // A lower-case unknown last word was checked to end the name.
            let last_ok = f[n - 1] & (FIRST | LAST) != 0 || capitalised || f[n - 1] == 0;
            return f[0] & FIRST != 0 && (clean(f[0]) || capitalised) && last_ok;
        }
        // "Hi Haruto", "Hola Abebe": any capitalised word not a stop word.
        Cue::Greeting if capitalised || known(f[0]) => return true,
        Cue::Label if n == 1 => return clean(f[0]),
        Cue::Label if capitalised || (0..n).any(|j| clean(f[j])) => return true,
        Cue::Verb if n == 1 => return clean(f[0]) && f[0] & FIRST != 0,
        Cue::Verb if (0..n).any(|j| clean(f[j])) => return true,
        // "DELACROIX Margaux": a surname in capitals, then a known first name
        // (an unknown word of three capitals is an acronym: "UBO Davide").
        _ if n >= 2
            && w[run[0]].caps
            && (known(f[0]) || w[run[0]].end - w[run[0]].start > 3)
            && !w[run[n - 1]].caps
            && clean(f[n - 1])
            && f[n - 1] & FIRST != 0 =>
        {
            return true
        }
        // "Approved by K. Zielińska".
        Cue::Verb | Cue::Label if initial(0) && capitalised && n >= 2 => return true,
        _ => {}
    }
    if n < 2 {
        return false;
    }
    // No cue: a first name then a last name, one of them unambiguous.
    let first_ok = f[0] & FIRST != 0 || initial(0);
    let last = f[n - 1];
    let last_ok = last & LAST != 0;
    let middle_ok = (1..n - 1).all(|j| known(f[j]) || initial(j) || particle(j));
    if !middle_ok {
        return false;
    }
    let start = sentence_start(text, w[run[0]].start);
    if first_ok && last_ok {
        // "Mark Brown": two everyday words are no name without a cue.
        return clean(f[0]) || clean(last) || (initial(0) && known(last));
    }
    if clean(f[0]) && f[0] & FIRST != 0 && last == 0 && w[run[n - 1]].cap {
        // "Priya Raghunathan", "José María Urquiza": known first names, an
        // unknown surname.
        return true;
    }
    if f[0] == 0 && !start && clean(last) && last & LAST != 0 && n == 2 {
        // "Oluwaseun Adeyemi" mid-sentence: an unknown first name.
        return true;
    }
    false
}

/// Words that end the name of a place rather than a person's, without a
/// cue or after a preposition ("Destiny Park", "from Canary Wharf"; "Hi
/// Min-jun Park" is a person).
const PLACE_WORDS: &[&str] = &[
    "park", "plaza", "square", "mall", "centre", "center", "gardens", "heights", "valley",
    "bridge", "station", "airport", "arena", "tower", "towers", "wharf",
];

/// Words that end the name of a company rather than a person's, whatever
/// the cue ("Northbridge Lending").
const ORG_WORDS: &[&str] = &[
    "lending",
    "bank",
    "capital",
    "payments",
    "credit",
    "finance",
    "financial",
    "insurance",
    "group",
    "holdings",
    "partners",
    "ventures",
    "solutions",
    "logistics",
    "consulting",
];

/// Whether the run is a company, a model or a place named after people.
fn not_people(text: &str, w: &[Word], i: usize, last: usize) -> bool {
    if let Some(next) = w.get(last + 1) {
        let gap = &text[w[last].end..next.start];
        if (gap == " " || gap == " & " || gap == ", " || gap == "-" || gap == " (")
            && NOT_AFTER.contains(&lower(&text[next.start..next.end]).as_str())
        {
            return true;
        }
        if gap == " & " || gap == "-" {
            // "Johnson & Johnson", "Black-Scholes" split by the tokenizer.
            return true;
        }
    }
    let low = |x: &Word| lower(&text[x.start..x.end]);
    let end_word = low(&w[last]);
    if last > i
        && (ORG_WORDS.contains(&end_word.as_str())
            || (PLACE_WORDS.contains(&end_word.as_str())
                && match cue(text, w, i) {
                    Cue::None => true,
                    // "from Canary Wharf", but "from Min-jun Park".
                    Cue::Prep | Cue::Verb => {
                        w[i].flags & FIRST == 0 || w[i].flags & (STOP | AMBIGUOUS) != 0
                    }
                    _ => false,
                }))
    {
        // "Destiny Park", "Liberty Plaza", "Northbridge Lending".
        return true;
    }
    let tail = text[w[last].start..w[last].end]
        .rsplit('-')
        .next()
        .unwrap_or("");
    if text[w[last].start..w[last].end].contains('-')
        && tail.starts_with(char::is_lowercase)
        && tail.chars().count() >= 6
    {
        // "Albert Heijn-klanten": a name inside a compound word (not a
        // Korean given name: "Seo-yeon", "Min-jun").
        return true;
    }
    if NOT_BEFORE.contains(&low(&w[i]).as_str()) {
        // "San Diego", "Santa Clara", "Mount Vernon".
        return true;
    }
    if i > 0 {
        let gap = &text[w[i - 1].end..w[i].start];
        if (gap == " " || gap == ". " || gap == "-" || gap == " & ")
            && (NOT_BEFORE.contains(&low(&w[i - 1]).as_str()) || gap == " & " || gap == "-")
        {
            return true;
        }
    }
    let span: Vec<String> = (i..=last)
        .map(|x| low(&w[x]))
        .filter(|l| !PARTICLES.contains(&l.as_str()))
        .collect();
    // "Black-Scholes" is one word of the text, "black scholes" in the list.
    let joined = span.join(" ").replace('-', " ");
    NOT_PEOPLE
        .iter()
        .any(|p| joined == *p || joined.starts_with(&format!("{p} ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        find(text, &[])
            .into_iter()
            .map(|(a, z)| &text[a..z])
            .collect()
    }

    #[test]
    fn names_with_cues_and_without() {
        assert_eq!(
            names("Customer Maria González called twice"),
            ["Maria González"]
        );
        assert_eq!(names("Sehr geehrter Herr Müller,"), ["Müller"]);
        assert_eq!(names("Bonjour Mme Dubois"), ["Dubois"]);
        assert_eq!(names("hi john, thanks"), ["john"]);
        assert_eq!(names("Please ask Priya Sharma to sign"), ["Priya Sharma"]);
        assert_eq!(
            names("the file from Ludwig van Beethoven"),
            ["Ludwig van Beethoven"]
        );
        assert_eq!(names("Best regards,\nJean-Luc Picard"), ["Jean-Luc Picard"]);
        assert_eq!(names("Dr. Wei Zhang reviewed it"), ["Wei Zhang"]);
        assert_eq!(names("signed: JOHN SMITH"), ["JOHN SMITH"]);
        assert_eq!(names(r#"{"customer": "trace adkins"}"#), ["trace adkins"]);
        assert_eq!(
            names("Das Depot von Annegret Zwanziger wurde übertragen"),
            ["Annegret Zwanziger"]
        );
    }

    #[test]
    fn everyday_words_companies_and_models_are_not_people() {
        for t in [
            "May we proceed?",
            "Will the payment clear by May 3?",
            "Morgan Stanley raised its target",
            "price it with Black-Scholes",
            "a Monte Carlo simulation",
            "shares of Johnson & Johnson",
            "flights to San Diego",
            "Mark Brown as done",
            "Hi team, the report is ready",
            "Dear Customer,",
            "Ask Claude to summarise the ticket",
            "Die Lage ist ernst, wir brauchen mehr",
            "Crédit Agricole et BNP Paribas ont publié",
            "on the search API yesterday evening. Summarise the open incidents",
            r#"{"tool":"lookup_customer","trace_id":"5e85"}"#,
            "UBO Davide — CF",
            "The team moves from Canary Wharf in June",
            "Codice Fiscale GLLFRC85S42L219Y",
        ] {
            assert_eq!(names(t), Vec::<&str>::new(), "{t}");
        }
    }
}
