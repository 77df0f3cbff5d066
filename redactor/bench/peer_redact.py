"""The benchmark's peer: the redactor's patterns, validators and tokens in
Python with the standard `re` module, the way such a redactor is usually
written (a `finditer` per pattern, kinds in priority order, a match skipped
where it overlaps an earlier finding), for every kind of `Kind::ALL`.

    python3 peer_redact.py KEY_HEX CORPUS OUTPUT MIN_SECONDS

Redacts every line of CORPUS (one field per line), repeating until
MIN_SECONDS have passed, writes the redacted lines to OUTPUT once, and
prints {"bytes_per_second": ..., "passes": ...}.

Ported from redactor/src: the patterns of `builtin_patterns` (detect.rs,
dob.rs) in `re` syntax; the validators and the value's span inside a match
(validate.rs, national_id.rs, secret.rs, dob.rs, crypto_address.rs,
detect.rs `span` and `within_words`); the context words with the same byte
windows (context.rs); the table pass (table.rs, detect.rs `scan`): under a
header line naming a name, birth-date, address or phone column (a rule
line under it skipped), each row's field in it, trimmed of white space and
then of quotes, brackets and semicolons (SQL `VALUES ('...', ...)`), is a
finding of that kind (a phone column's if it is a number), outside the
tokens, first priority (a finding of another kind or an address that
overlaps it is dropped); the
address pass (address.rs, detect.rs `scan` and `addresses`): the four forms
scanned on their own, leftmost-first, outside the tokens, next priority (a
pattern finding that overlaps an address is dropped); the names pass
(names.rs: gazetteers of redactor/data, the same word lists, cues, lists of
names, look-up window and rules in the same order) over the text outside
every other finding and the tokens; the tokens (token.rs, person and
address values normalised).
As `redact_text` does, a text is redacted again until nothing more is found,
and text with backslashes is also tried with its JSON escapes resolved.

Where this differs from the Rust engine:
- Rust scans once with every pattern and takes the leftmost match (ties by
  priority); here each kind is scanned on its own, in priority order, so a
  value that starts before an overlapping one of a higher-priority kind is
  lost to it. Within a kind the forms are merged leftmost-first as in Rust,
  a match that fails its form's validator is tried with the kind's later
  forms at the same place, and a run of digits that fails as a card hides
  the numbers starting inside it from the later kinds (as in Rust, where the
  scan goes on after it; one starting before it, "+49 171 ...", is kept).
- `(?-u:\\b)` is `\\b` in patterns compiled with re.ASCII (whose `(?i)` lacks
  the Kelvin sign and long s of Rust's Unicode case folding) and `(?a:\\b)`
  in the Unicode ones (e-mail, passwords, passport, date of birth,
  addresses; Unicode `(?i)` adds the dotless i). Rust's Unicode `\\s` is an
  explicit class.
- `\\p{L}` is `[^\\W\\d_]` and `\\p{L}\\p{N}` is `[^\\W_]` (Python's categories:
  they also take non-decimal numbers such as `²`); `\\p{Lu}` and `\\p{M}` are
  classes of the Basic Multilingual Plane built from `unicodedata` (an
  explicit class beyond it makes `re` slow on every character outside it).
  `char::is_alphabetic` is `[^\\W\\d_]` too, `char::is_alphanumeric` is
  `str.isalnum` (neither takes the combining vowel signs Rust counts as
  alphabetic).
- Keccak-256 (EIP-55), bech32 and base58check are written out here, as
  hashlib has neither.
"""

import base64
import hashlib
import hmac
import ipaddress
import itertools
import json
import os
import re
import string
import sys
import time
import unicodedata


# --- Unicode classes -------------------------------------------------------


def _bmp_class(categories):
    """The body of a character class (for use inside `[...]`) of the Basic
    Multilingual Plane's characters of these general categories."""
    runs = []
    category = unicodedata.category
    for cp in range(0x10000):
        if category(chr(cp)) in categories:
            if runs and runs[-1][1] == cp - 1:
                runs[-1][1] = cp
            else:
                runs.append([cp, cp])

    def esc(cp):
        return "\\x%02x" % cp if cp < 0x100 else "\\u%04x" % cp

    return "".join(esc(a) if a == b else esc(a) + "-" + esc(b) for a, b in runs)


# Rust's \p{L} is `[^\W\d_]` here, \p{L}\p{N} is `[^\W_]` (Python's own
# Unicode categories, fast), \p{Lu} and \p{M} are explicit classes.
LU = _bmp_class({"Lu"})
M = _bmp_class({"Mn", "Mc", "Me"})
UB = r"(?a:\b)"  # Rust's (?-u:\b) in a Unicode pattern


# --- Lists (context.rs, names.rs, dob.rs, validate.rs, national_id.rs, address.rs) ---

GENERIC_TLDS = (
    r"com org net edu gov mil int info biz name pro aero coop museum mobi asia tel travel "
    r"jobs cat io ai app dev co me tv cc ly gg sh so to fm am la ws bz vc xyz online site "
    r"tech store shop cloud email mail live blog news media digital agency company group "
    r"global solutions services systems network support studio design world today life "
    r"space website host page link click top club fun bank insurance finance capital "
    r"ventures partners consulting legal law health care clinic school academy university "
    r"college education science energy software engineering technology security green eco "
    r"earth city london berlin paris nyc tokyo amazon google apple microsoft dell ibm sap "
    r"bmw audi post arpa local internal corp lan home test example invalid localhost eu uk "
    r"su ac"
)

COUNTRIES = (
    r"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN "
    r"BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ "
    r"DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL "
    r"GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM "
    r"JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME "
    r"MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP "
    r"NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD "
    r"SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO "
    r"TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW"
)

US_STATES = (
    r"AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|"
    r"NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI"
)

US_TYPES = (
    r"Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|"
    r"Parkway|Pkwy|Terrace|Ter|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Plaza|Plz|Alley|"
    r"Aly|Row|Loop|Pike|Broadway|Expressway|Expy|Freeway|Fwy|Turnpike|Tpke|Crossing|Xing|"
    r"Point|Pt|Ridge|Run|Path|Walk"
)

UK_TYPES = (
    r"Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Close|Cl|Drive|Dr|Way|Gardens|Gdns|Place|Pl|"
    r"Square|Sq|Crescent|Cres|Terrace|Tce|Grove|Gr|Hill|Court|Ct|Row|Mews|Walk|Park|Green|"
    r"Parade|Rise|View|Vale|Wharf|Yard|Embankment|Circus|Gate|Drove|Fields|Meadows|Quay|"
    r"Broadway"
)

DE_SUFFIXES = (
    r"straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee|steig|pfad|markt|"
    r"graben|berg|hof|kai|zeile|stieg|twiete"
)

DE_WORDS = (
    r"Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer|Chaussee|Markt|Steig|Pfad|"
    r"Graben|Tor|Promenade|Landstraße|Heerstraße"
)

FR_TYPES = (
    r"rue|avenue|av\.|boulevard|bd|place|pl\.|allée|allee|impasse|imp\.|chemin|ch\.|quai|"
    r"cours|route|rte|square|passage|voie|rond-point|faubourg|fbg|chaussée|esplanade|parvis|"
    r"sentier|villa|cité|résidence|promenade|montée|lieu-dit|hameau"
)

# Countries written after an address: part of it.
ADDR_COUNTRIES = (
    r"USA|U\.S\.A\.|U\.S\.|US|United States(?: of America)?|UK|U\.K\.|United Kingdom|Great Britain|England|"
    r"Scotland|Wales|Northern Ireland|Germany|Deutschland|Allemagne|Alemania|Alemanha|Germania|France|"
    r"Frankreich|Francia|França|Royaume-Uni|Reino Unido|Regno Unito|Vereinigtes Königreich|Estados Unidos|"
    r"États-Unis|Stati Uniti|Vereinigte Staaten"
)

AMBIGUOUS_WORDS = (
    "vitória marion lorenz concepción rosario vittoria marsala destiny liberty "
    "will may mark bill frank grant rose hope faith joy grace dawn ray guy art pat jack max don "
    "sue ben rich young king long white black brown green gray grey hall wood stone hill price "
    "summer june april august sun star sky rock river lake moon snow storm rain chance case law "
    "lord major prince earl duke royal justice cash sterling page card bird fox wolf bear lamb "
    "hunter fisher baker cook bishop knight lance miles wade drew reed field fields banks cross "
    "bush rush mars angel baby honey sunny cherry ruby amber crystal jade pearl ivy holly lily "
    "daisy violet iris olive hazel heather autumn harmony melody destiny love gold silver steel "
    "key street church house bell lane north south east west worth post sharp swift bright "
    "early free strong short small little klein gross groß lange kurz stark neu schwarz weiss "
    "weiß braun fuchs vogel koch jung fromm ehrlich blanc petit grand gros roux noir brun rosa "
    "luz paz sol mar cruz santos blanco negro rojo bravo mora flores campos costa lima mayor "
    "sales more best good new watson jenkins kafka alexa victoria florence lincoln jordan "
    "georgia virginia carolina dallas austin houston denver chase morgan sage nova stanley "
    "monday friday sunday well herbst winter sommer frost hart gay mercedes romeo carlo ford "
    "charlotte sydney adelaide alexandria nancy lourdes jackson hamilton wellington pascal ada "
    "chanel hermès amparo savannah madison phoenix orlando raleigh chelsea kingston regina "
    "brighton lorraine valencia santiago salvador natal victoria florence lincoln"
).split()

STOP_WORDS = (
    "codice fiscale loan alta markt "
    "floor flat add review manual ihrem ihren konto service lending loans mortgage mortgages "
    "oetker porsche bosch siemens numbers column table alter drop create index date pan treasury "
    "payments collections accounts onboarding kyc fraud equipa apoio sud nord norte arbor "
    "claude julia gemini llama mistral falcon dolly cortana jarvis bard grok copilot devin siri "
    "django flask rails docker kubernetes apache spark airflow pandas polars kibana grafana "
    "prometheus loki tempo jaeger ollama cohere visa stripe plaid adyen klarna revolut monzo "
    "wise santander barclays citi fidelity vanguard bloomberg reuters morningstar moody fitch "
    "paris london berlin madrid lisbon lisboa rome roma milan milano munich münchen hamburg "
    "lyon marseille porto sevilla valencia barcelona boston chicago texas florida california "
    "washington york jersey europe america asia africa india china japan israel france germany "
    "spain italy brazil brasil canada mexico england ireland wales scotland january february "
    "march july september october november december januar februar juni juli oktober dezember "
    "janvier avril mai juin juillet août enero abril mayo junio julho maggio tuesday wednesday "
    "thursday saturday montag freitag lundi mardi jeudi vendredi samedi dimanche lunes martes "
    "viernes domingo sir madam team customer client support admin user all everyone there world "
    "folks guys colleagues kollegen collègues equipo equipe gmbh inc ltd llc plc bank capital "
    "partners group holdings christmas easter bayes markov gauss fourier kalman newton euler "
    "poisson bernoulli nash sharpe sortino treynor vasicek heston merton scholes bollinger "
    "fibonacci pareto gini kelly wiener ito laplace cauchy student pearson spearman kendall "
    "jensen shapley turing helm friends partner community users members staff devs developers "
    "ladies gentlemen damen herren mesdames messieurs señores senhores amigos todos tous "
    "zusammen leute allerseits again google amazon microsoft apple meta openai anthropic "
    "success portal service services financial finance operations risk billing sales marketing "
    "engineering legal compliance security product hr it ops board english german french "
    "spanish portuguese italian dutch chinese japanese korean indian american british european "
    "brazilian mexican canadian swiss austrian polish russian arabic turkish greek irish "
    "scottish welsh african asian latin deutsch français español português italiano the your "
    "our ihr ihre unser unsere votre notre l'équipe équipe team desk servicedesk service-team "
    "kolleginnen colleghi colegas hiring valid thru présidente président directeur directrice "
    "presidente director directora chatgpt gpt avenue street road lane drive boulevard parkway "
    "terrace creek straße sankt janeiro fevereiro março junho julho setembro outubro dezembro "
    "unknown anonymous n/a not null none true false nan select insert update delete values "
    "varchar primary default ufficio time clients equipo departamento abteilung büro bureau "
    "cellule pôle direction servizio atendimento kundenservice intestatario titolare"
).split()

TITLES = (
    "mr mrs ms miss mx dr prof professor sir dame lady herr herrn frau fräulein monsieur madame "
    "mademoiselle mme mlle señor señora señorita sr sra srta dra doña senhor senhora sig m seu "
    "dona sigra mrs madame maître me signor signora signorina dott dottssa ing avv"
).split()

GREETINGS = (
    "hi hello hey dear hallo liebe lieber moin servus bonjour salut coucou cher chère hola "
    "estimado estimada querido querida olá ola oi prezado prezada caro cara ciao salve gentile "
    "buongiorno thanks danke merci gracias obrigado obrigada grazie regards cheers grüße gruß "
    "cordialement saludos atenciosamente abraços geehrte geehrter dia días tag morning "
    "afternoon evening bonsoir hej hoi namaste"
).split()

SIGNOFFS = (
    "vg lg mfg kr br groet groeten "
    "regards cheers thanks best grüße gruß gruss danke merci cordialement saludos saludo "
    "gracias atenciosamente obrigado obrigada grazie abraços abraço abrazos abrazo saluti bises "
    "bisous beijos besos valeu sincerely yours thx ty"
).split()

LABELS = (
    "name names customer client contact applicant borrower guarantor cosigner cardholder holder "
    "owner beneficiary payee recipient sender employee patient agent manager signed assigned "
    "approved requested reported attn attention kunde kundin vorname nachname ansprechpartner "
    "inhaber kontoinhaber antragsteller mitarbeiter nom prénom cliente titulaire demandeur "
    "nombre apellido apellidos titular solicitante nome sobrenome beneficiário beneficiario "
    "contato contacto user"
).split()

NAME_LABELS = (
    "bénéficiaire attendees participants teilnehmer asistentes participantes requester guarantor "
    "borrower bearbeiter antragsteller solicitante demandeur emprunteur garant avalista fiador "
    "reporter assignee owner "
    "name firstname lastname fullname surname forename vorname nachname nom prénom nombre "
    "apellido apellidos nome sobrenome cognome holder cardholder beneficiary payee titular "
    "titulaire inhaber kontoinhaber ansprechpartner signed signature unterschrift intestatario "
    "titolare"
).split()

VERBS = "from by with cc called call ask tell told met emailed von mit avec con com".split()

PREPS = (
    "soy sou sono suis heiße heisse llamo chamo chiamo named "
    "de do da dos das del di du of for to and und et e y para pour für per a à an at laut selon "
    "según segundo secondo via sobre about über"
).split()

NOT_AFTER = (
    "inc llc ltd plc gmbh ag sa sas sarl spa bv nv co corp corporation company group holdings "
    "bank capital partners securities associates brothers bros foundation fund university "
    "college hospital street st avenue ave road rd straße strasse platz weg allee boulevard "
    "square airport station bridge center centre institute museum stadium county city beach "
    "school model ratio formula equation method filter regression estimator test criterion "
    "bands distribution process curve index score algorithm transform effect theorem scale "
    "award prize act library hotel manager team desk department office credit motor motors "
    "financial finance insurance airlines pharma labs technologies systems"
).split()

NOT_BEFORE = (
    "mount mt saint st ste san santa são lake fort port cape rue calle avenida rua via piazza "
    "avenue boulevard place plaza platz university hotel club hurricane operation project team "
    "sankt bad unter"
).split()

PARTICLES = (
    "van von der den de la le da das do dos del della di du bin ibn al el ben ter ten zu dal lo "
    "af av ó st"
).split()

NOT_PEOPLE = [
    "casas bahia", "yves rocher", "louis vuitton", "hugo boss", "massimo dutti", "albert heijn",
    "morgan stanley", "goldman sachs", "wells fargo", "charles schwab", "lehman brothers",
    "merrill lynch", "bear stearns", "dow jones", "edward jones", "raymond james", "grant thornton",
    "fannie mae", "freddie mac", "sallie mae", "louis vuitton", "christian dior", "calvin klein",
    "ralph lauren", "tommy hilfiger", "hugo boss", "estée lauder", "walt disney", "harley davidson",
    "rolls royce", "aston martin", "tim hortons", "johnnie walker", "jack daniels", "jack daniel's",
    "kaplan meier", "fama french", "black scholes", "monte carlo", "van gogh", "dr pepper",
    "ernst young", "john deere", "st james", "marks spencer", "morgan chase", "mercedes benz",
    "julius bär", "julius baer", "ford credit", "ford motor", "unter den linden",
]

# Words that end the name of a place rather than a person's, without a cue
# ("Destiny Park"; "Hi Min-jun Park" is a person).
PLACE_WORDS = frozenset(
    "park plaza square mall centre center gardens heights valley bridge station airport arena tower "
    "towers wharf".split()
)

# Words that end the name of a company rather than a person's, whatever the
# cue ("Northbridge Lending").
ORG_WORDS = frozenset(
    "lending bank capital payments credit finance financial insurance group holdings partners "
    "ventures solutions logistics consulting".split()
)

SUFFIXES = "'s -san -sama -kun -chan -sensei -ssi -nim".split()

FOLLOWERS = (
    "is was has had says said changed wants needs asked called paid est a était veut demande "
    "ist hat war möchte wurde está es tiene quiere pidió tem quer pediu é foi risulta è ha "
    "vuole chiede and und et y e"
).split()

CX_SSN = [
    "ssn", "ssn#", "ss#", "social security", "soc. sec.",
]

CX_SIN = [
    "=SIN", "social insurance", "assurance sociale", "=NAS", "numéro d'assurance sociale",
]

CX_AADHAAR = [
    "aadhaar", "aadhar", "uidai", "uid no", "uid number",
]

CX_DE_TAX_ID = [
    "steuer-id", "steuerid", "steuer", "steueridentifikationsnummer", "identifikationsnummer",
    "idnr", "tax id", "=TIN",
]

CX_CPF = "cpf".split()

CX_ABA = [
    "routing", "aba", "rtn", "routing number", "transit number",
]

CX_BIC = [
    "bic", "swift", "swift code", "bic code", "bank identifier",
]

CX_PHONE = (
    "tel tel. tél phone mobile mobil cell handy telefon telefono teléfono telefone telemóvel "
    "telemovel celular portable móvil movil whatsapp fax rufnummer telefonnummer call sms ring "
    "mob ph telephone téléphone contact llámame llamar ligue ligar cellulare handynummer mobilnummer "
    "mobilfunknummer contacto contato tlf tfno telf cel cel. tel: mob. tlm tlm. telem. callback chamada llamada "
    "ligação ligacao contactado contactada contacted rappeler anrufen"
).split()

CX_REFERENCE = (
    "aktenzeichen az. vorgang vorgangsnummer fall fallnummer akte kundennummer rechnung "
    "rechnungsnummer auftrag auftragsnummer bestellung bestellnummer ticket case order invoice "
    "ref referenz nr nr. nummer dossier expediente pedido factura fatura processo konto "
    "kontonummer iban blz facture commande contrat account"
).split()

CX_VERSION = "version ver ver. build release firmware v".split()

MONTHS = (
    "january february march april may june july august september october november december jan "
    "feb mar apr jun jul aug sep sept oct nov dec januari februari maart mei augustus januar jänner februar märz maerz mai juni juli "
    "oktober dezember okt dez janvier février fevrier mars avril juin juillet août aout septembre "
    "octobre novembre décembre decembre janv févr fév avr juil déc enero febrero marzo abril mayo "
    "junio julio agosto septiembre setiembre octubre noviembre diciembre ene dic janeiro "
    "fevereiro março marco maio junho julho setembro outubro novembro dezembro fev set out dez "
    "gennaio febbraio aprile maggio giugno luglio settembre ottobre dicembre"
).split()


# --- Context words (context.rs) --------------------------------------------

BEFORE = 48  # bytes before a candidate searched for a context word
AFTER = 24  # bytes after it
TOKEN = re.compile(r"<[a-z][a-z0-9_]{0,31}:[0-9a-f]{16}>")


def blen(s):
    """The UTF-8 length of `s` (Rust's `str::len`)."""
    return len(s) if s.isascii() else len(s.encode())


def back(text, start, nbytes):
    """The first character of the window of at most `nbytes` bytes that ends
    at `start`."""
    lo = max(0, start - nbytes)
    if text[lo:start].isascii():
        return lo
    i, used = start, 0
    while i > 0:
        used += len(text[i - 1].encode())
        if used > nbytes:
            break
        i -= 1
    return i


def ahead(text, end, nbytes):
    """The end of the window of at most `nbytes` bytes that starts at `end`."""
    hi = min(len(text), end + nbytes)
    if text[end:hi].isascii():
        return hi
    i, used = end, 0
    while i < len(text):
        used += len(text[i].encode())
        if used > nbytes:
            break
        i += 1
    return i


def has_word(text, lo, hi, words):
    """Whether one of `words` is a whole word of `text[lo:hi]`, with the
    tokens the redactor wrote (also ones cut by the window) blanked out."""
    if lo >= hi:
        return False
    a, z = max(0, lo - 51), min(len(text), hi + 51)
    region = TOKEN.sub(lambda m: " " * len(m.group()), text[a:z])
    window = region[lo - a:hi - a]
    lower = window.lower()
    for w in words:
        # An acronym that is also an everyday word counts only in capitals.
        hay = lower
        if w.startswith("="):
            w, hay = w[1:], window
        i = hay.find(w)
        while i >= 0:
            j = i + len(w)
            # A plural is context too ("SSNs").
            if j < len(hay) and hay[j] in "sS" and w[-1].isascii() and w[-1].isalpha():
                j += 1
            if not (i > 0 and hay[i - 1].isalnum()) and not (j < len(hay) and hay[j].isalnum()):
                return True
            i = hay.find(w, i + len(w))
    return False


def before(text, start, words):
    return has_word(text, back(text, start, BEFORE), start, words)


def token_near(text, start, end, check):
    """Whether a word of ASCII letters and digits in the context windows
    passes `check` (context.rs)."""
    parts = (text[back(text, start, BEFORE):start], text[end:ahead(text, end, AFTER)])
    return any(check(w) for part in parts for w in re.split(r"[^A-Za-z0-9]", part))


def near(text, start, end, words):
    return before(text, start, words) or has_word(text, end, ahead(text, end, AFTER), words)


# --- Validators (validate.rs) ----------------------------------------------

DIGITS = frozenset("0123456789")
ASCII_ALNUM = frozenset(string.ascii_letters + string.digits)
WORD = frozenset(string.ascii_letters + string.digits + "_")


def ascii_lower(s):
    return s.lower() if s.isascii() else "".join(c.lower() if c.isascii() else c for c in s)


def ascii_upper(s):
    return s.upper() if s.isascii() else "".join(c.upper() if c.isascii() else c for c in s)


def luhn(ds):
    total = 0
    for i, d in enumerate(reversed(ds)):
        d = ord(d) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card(s):
    ds, ends = [], []
    for i, c in enumerate(s):
        if c in DIGITS:
            ds.append(c)
            if i + 1 == len(s) or s[i + 1] not in DIGITS:
                ends.append((len(ds), i + 1))

    def issued(n):
        return ds[0] == "4" or (ds[0] in "23456" and n >= 14)

    def grouped_like_a_card(end):
        groups = [len(g) for g in re.split("[ -]", s[:end])]
        return len(groups) == 1 or (groups[0] == 4 and all(3 <= n <= 6 for n in groups[1:]))

    for n, end in reversed(ends):
        if 13 <= n <= 19 and issued(n) and luhn(ds[:n]) and len(set(ds[:n])) > 1 and grouped_like_a_card(end):
            return end
    return None


def ssn(s):
    d = [ord(c) - 48 for c in s if c in DIGITS]
    if len(d) != 9:
        return False
    area, group, serial = d[0] * 100 + d[1] * 10 + d[2], d[3] * 10 + d[4], d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8]
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


IBAN_LEN = {"DE": 22, "GB": 22, "IE": 22, "FR": 27, "IT": 27, "MC": 27, "NL": 18, "BE": 16, "ES": 24, "SE": 24,
            "CH": 21, "LI": 21, "AT": 20, "PL": 28, "PT": 25, "DK": 18, "FI": 18, "NO": 15, "LU": 20}


def iban(s):
    if not s.isascii():
        return None
    compact, end_of = [], []
    for i, c in enumerate(s):
        if c != " ":
            compact.append(c.upper())
            end_of.append(i + 1)
    known = IBAN_LEN.get("".join(compact[:2]))
    for n in [known] if known else range(34, 14, -1):
        if n > len(compact):
            continue
        end = end_of[n - 1]
        if end < len(s) and s[end] in ASCII_ALNUM:
            continue
        if known is None and any("a" <= c <= "z" for c in s[:end]):
            continue
        if int("".join(str(int(c, 36)) for c in compact[4:n] + compact[:4])) % 97 == 1:
            return end
    return None


def ipv4(text, start, end):
    s = text[start:end]
    if start > 0 and text[start - 1] == ".":
        return False
    if end + 1 < len(text) and text[end] == "." and text[end + 1] in DIGITS:
        return False
    octets = [int(o) for o in s.split(".") if o and len(o) <= 3 and (o == "0" or not o.startswith("0")) and int(o) <= 255]
    if len(octets) != 4 or octets[0] == 127 or octets == [0, 0, 0, 0] or octets == [255, 255, 255, 255]:
        return False
    head = text[:start]
    previous_word = re.split(r"[^\w.]|_", head.rstrip(" :\t"))[-1].lower()
    pinned = head.endswith("==") or (head.endswith("/") and len(head) > 1 and head[-2].isalnum())
    return not pinned and previous_word not in CX_VERSION


def ipv6(s):
    end = len(s)
    while end > 2:
        cand = s[:end]
        try:
            ipaddress.IPv6Address(cand)
            return end if len([g for g in cand.split(":") if g]) >= 3 else None
        except ValueError:
            end = cand.rfind(":")
            if end < 0:
                return None
    return None


def ssn_shaped(s):
    return len(s) == 11 and all(c == "-" if i in (3, 6) else c in DIGITS for i, c in enumerate(s))


def bearer(s):
    t = s.rstrip(".,")
    parts = t.split()
    token = parts[1] if len(parts) > 1 else ""
    random = any(c in DIGITS for c in token) or (
        any("A" <= c <= "Z" for c in token) and any("a" <= c <= "z" for c in token))
    return len(t) if len(token) >= 16 and random else None


def phone(text, start, s, form):
    if ssn_shaped(s):
        return None
    trimmed = s
    while trimmed and trimmed[-1] not in DIGITS:
        trimmed = trimmed[:-1]
    digits = sum(c in DIGITS for c in trimmed)
    end = start + len(trimmed)

    def said():
        return near(text, start, end, CX_PHONE)

    if form == 0:
        trunk = trimmed.startswith("00")
        if trunk:
            digits -= 2
        # Thousands are grouped with dots; "+34 657 539 486" is a phone.
        groups = trimmed.split(".")
        thousands = len(groups) >= 3 and all(len(g) == 3 for g in groups[1:])
        reference = trunk and not said() and before(text, start, CX_REFERENCE)
        ok = 8 <= digits <= 15 and not thousands and not reference
    elif form == 1:
        ok = digits == (11 if trimmed.startswith("1") else 10)
    elif form == 2:
        ok = 9 <= digits <= 12 and (said() or not before(text, start, CX_REFERENCE))
    elif form == 3:
        mobile = ((trimmed.startswith("07") and digits == 11)
                  or ((trimmed.startswith("06") or trimmed.startswith("07")) and digits == 10)
                  or (trimmed.startswith(("015", "016", "017")) and 11 <= digits <= 12))
        ok = (mobile or said()) and 10 <= digits <= 13
    elif form == 4:
        ok = 9 <= digits <= 11 and said()
    elif form == 5:
        ok = digits == 10 and (said() or not before(text, start, CX_REFERENCE))
    elif form == 6:
        ok = 10 <= digits <= 11
    elif form == 7:
        # (069) 76515958, (020) 8293 1043: the trunk 0 in brackets.
        ok = 9 <= digits <= 12
    elif form == 8:
        # 345/8337684: an Italian mobile.
        ok = 9 <= digits <= 10
    elif form == 9:
        # 21 99731 6690: a Brazilian mobile with its area code.
        ok = digits == 11
    else:
        # 48 3274-8828: a Brazilian landline with its area code.
        ok = digits == 10
    return len(trimmed) if ok else None


GENERIC = frozenset(GENERIC_TLDS.split())
COUNTRY = frozenset(COUNTRIES.split())
DOTS = re.compile("[.。．｡]")


def known_tld(tld):
    return (not tld.isascii() or tld.startswith("xn--") or (len(tld) == 2 and tld.upper() in COUNTRY)
            or tld in GENERIC)


def email(text, start, end):
    s = text[start:end]
    start += len(s) - len(s.lstrip(".-+%"))
    at = text.find("@", start, end)
    if at < 0 or at == start or text[start:at].endswith("."):
        return None
    nxt = text[end] if end < len(text) else None
    then = text[end + 1] if end + 1 < len(text) else None
    if nxt == ":":
        rest = re.match(r"\S*", text[end + 1:]).group()
        code = then is not None and not then.isspace() and ("/" in rest or rest.startswith("~"))
    elif nxt == ".":
        code = then is not None and then.isalnum()
    elif nxt == "(":
        code = True
    else:
        code = nxt is not None and nxt.isalnum()
    tld = DOTS.split(text[at + 1:end])[-1].lower()
    return None if code or not known_tld(tld) else (start, end)


def passport(s):
    i = len(s)
    while i > 0 and s[i - 1] in ASCII_ALNUM:
        i -= 1
    if i == 0:
        return None
    return (i, len(s)) if passport_number(s[i:]) else None


def passport_number(v):
    """A passport number's shape (validate.rs `passport_number`)."""
    german = len(v) == 9 and all(c in "CFGHJKLMNPRTVWXYZ" for c in v)
    return (6 <= len(v) <= 9 and all(c in ASCII_ALNUM for c in v)
            and (any(c in DIGITS for c in v) or german))


# --- National identifiers and bank codes (national_id.rs) ------------------


def id_digits(s):
    return [ord(c) - 48 for c in s if c in DIGITS]


def id_compact(s):
    return "".join(c for c in s if c not in " -.").upper()


def is_compact(s):
    return not any(c in " -." for c in s)


def uk_nino(s):
    c = id_compact(s)
    if len(c) != 9:
        return False
    prefix = c[:2]
    return ((prefix == "QQ" or (c[0] not in "DFIQUV" and c[1] not in "DFIOQUV"))
            and prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
            and all(x in DIGITS for x in c[2:8]) and "A" <= c[8] <= "D")


def de_tax_id(s):
    d = id_digits(s)
    if len(d) != 11 or d[0] == 0:
        return False
    repeated = [n for n in (d[:10].count(x) for x in range(10)) if n > 1]
    if len(repeated) != 1 or repeated[0] > 3:
        return False
    product = 10
    for x in d[:10]:
        total = (x + product) % 10 or 10
        product = (total * 2) % 11
    return (11 - product) % 10 == d[10]


def fr_nir(s):
    c = id_compact(s)
    if len(c) != 15:
        return False
    body, key = c[:13], c[13:]
    if not key.isascii() or not key.isdigit():
        return False
    body = {"2A": body[:5] + "19" + body[7:], "2B": body[:5] + "18" + body[7:]}.get(body[5:7], body)
    if not all(x in DIGITS for x in body):
        return False
    return 1 <= int(key) <= 97 and 97 - int(body) % 97 == int(key)


def es_dni(s):
    c = id_compact(s)
    if len(c) != 9:
        return False
    number = {"X": "0", "Y": "1", "Z": "2"}.get(c[0], c[0]) + c[1:8]
    if not all(x in DIGITS for x in number):
        return False
    return "TRWAGMYFPDXBNJZSQVHLCKE"[int(number) % 23] == c[8]


IT_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12,
          14, 16, 10, 22, 25, 24, 23]


def it_fiscal_code(s):
    c = id_compact(s)
    if len(c) != 16 or not all(x in ASCII_ALNUM for x in c):
        return False
    total = 0
    for i, x in enumerate(c[:15]):
        v = int(x, 36)
        total += IT_ODD[v] if i % 2 == 0 else v if v < 10 else v - 10
    return c[15] == chr(65 + total % 26)


VERHOEFF_MUL = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
                [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
                [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
                [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
VERHOEFF_PERM = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
                 [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
                 [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def verhoeff(d):
    c = 0
    for i, x in enumerate(reversed(d)):
        c = VERHOEFF_MUL[c][VERHOEFF_PERM[i % 8][x]]
    return c == 0


def aadhaar(s):
    d = id_digits(s)
    return len(d) == 12 and d[0] >= 2 and len(set(d)) > 1 and verhoeff(d)


def br_cpf(s):
    d = id_digits(s)
    if len(d) != 11 or len(set(d)) == 1:
        return False

    def check(n):
        r = sum(x * (n + 1 - i) for i, x in enumerate(d[:n])) * 10 % 11
        return 0 if r == 10 else r

    return check(9) == d[9] and check(10) == d[10]


def ca_sin(s):
    b = [c for c in s if c in DIGITS]
    return len(b) == 9 and b[0] != "8" and luhn(b) and len(set(b)) > 1


def aba_routing(s):
    d = id_digits(s)
    if len(d) != 9:
        return False
    prefix = d[0] * 10 + d[1]
    issued = prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80
    total = sum(3 * d[i] + 7 * d[i + 1] + d[i + 2] for i in (0, 3, 6))
    return issued and prefix != 0 and total % 10 == 0 and len(set(d)) > 1


def is_upper(c):
    return "A" <= c <= "Z"


def bic(s):
    return (len(s) in (8, 11) and all(is_upper(c) for c in s[:6]) and s[4:6] in COUNTRY
            and all(is_upper(c) or c in DIGITS for c in s[6:]))


def after_iban(text, start):
    """A valid IBAN ends right before `start`, at most three of ` (,/;`
    between them (detect.rs `after_iban`)."""
    end = start
    while end > 0 and start - end < 3 and text[end - 1] in " (,/;":
        end -= 1
    if end == start:
        return False
    for i in range(max(0, end - 42), max(0, end - 14)):
        if ((i == 0 or not (text[i - 1].isascii() and text[i - 1].isalnum()))
                and text[i] in string.ascii_uppercase and text[i + 1] in string.ascii_uppercase
                and text[i + 2] in DIGITS and text[i + 3] in DIGITS
                and all(c in ASCII_ALNUM or c == " " for c in text[i:end])
                and iban(text[i:end]) == end - i):
            return True
    return False


def in_capitals(text, start, end, s):
    """A BIC candidate of letters only in a run of words in capitals
    ("SWIFT CUSTOMER DETAILS") is a word (detect.rs `in_capitals`)."""
    if not all(c.isascii() and c.isalpha() for c in s):
        return False

    def word(w):
        return (len(w) >= 2 and all("A" <= c <= "Z" for c in w)
                and w not in ("BIC", "SWIFT", "IBAN", "CODE", "BANK"))
    before = after = None
    if text[:start].endswith(" "):
        t = text[:start - 1]
        i = len(t)
        while i > 0 and t[i - 1].isascii() and t[i - 1].isalpha():
            i -= 1
        before = t[i:]
    if text[end:].startswith(" "):
        t = text[end + 1:]
        i = 0
        while i < len(t) and t[i].isascii() and t[i].isalpha():
            i += 1
        after = t[:i]
    return (before is not None and word(before)) or (after is not None and word(after))


def in_pan(s):
    return (len(s) == 10 and all(is_upper(c) for c in s[:5]) and s[3] in "PCHFATBLJG"
            and all(c in DIGITS for c in s[5:9]) and is_upper(s[9]) and s[5:9] != "0000")


# --- Secrets (secret.rs) ---------------------------------------------------

PUNCTUATION = frozenset(string.punctuation)


def placeholder(v):
    return (v.startswith(("$", "{", "%", "/", "<")) or all(c in "*xX.#" for c in v)
            or ascii_lower(v) in ("true", "false", "null", "none", "nil", "undefined", "redacted", "hidden"))


def password(s):
    scheme = s.find("://")
    if scheme >= 0:
        colon = s.find(":", scheme + 3)
        at = s.rfind("@")
        if colon < 0 or at < 0:
            return None
        a, z = colon + 1, at
    elif "=" in s:
        eq = s.find("=")
        a, z = eq + 1, eq + 1 + len(s[eq + 1:].rstrip(".,)]"))
    else:
        slash, at = s.find("/"), s.rfind("@")
        if slash < 0 or at < 0:
            return None
        a, z = slash + 1, at
    if a > z:
        return None
    v = s[a:z]
    return (a, z) if blen(v) >= 3 and not placeholder(v) and "<" not in v and ">" not in v else None


def prose_password(s):
    """The last word of a sentence that gives a password (secret.rs)."""
    a = max(s.rfind(" "), s.rfind("\t"))
    if a < 0:
        return None
    a += 1
    z = len(s.rstrip(",;)"))
    v = s[a:z]
    strong = any(c.isalpha() for c in v) and any(c in DIGITS or c in PUNCTUATION for c in v)
    return (a, z) if len(v) >= 6 and strong and not placeholder(v) else None


def mysql_password(s):
    """The password of a MySQL client's `-p<password>` (secret.rs)."""
    i = max(s.rfind(" -p"), s.rfind("\t-p"))
    if i < 0:
        return None
    v = s[i + 3:]
    return (i + 3, len(s)) if blen(v) >= 3 and not placeholder(v) else None


def password_pair(s, quoted):
    sep = min((i for i in (s.find(":"), s.find("=")) if i >= 0), default=-1)
    if sep < 0:
        return None
    rest = s[sep + 1:]
    a = sep + 1 + len(rest) - len(rest.lstrip(" \t\"'"))
    z = len(s) - 1 if quoted else len(s.rstrip("\"'.)"))
    if a > z:
        return None
    v = s[a:z]
    strong = quoted or any(c in DIGITS or c in PUNCTUATION for c in v)
    ok = blen(v) >= 3 and strong and not placeholder(v) and "<" not in v and ">" not in v
    return (a, z) if ok else None


def cloud_secret(s):
    t = s.rstrip('"')
    eq = t.find("=")
    if eq >= 0 and '"' not in t[:eq]:
        a, z = eq + 1, len(t)
    else:
        q = max(t.rfind(c) for c in "\"' \t:")
        a, z = (q + 1, len(t)) if q >= 0 else (0, len(t))
    a += len(t[a:]) - len(t[a:].lstrip(" \t\"'"))
    if a > z:
        return None
    v = s[a:z]
    return (a, z) if blen(v) >= 16 and not placeholder(v) else None


def basic_auth(s):
    t = s.rstrip(".,")
    parts = t.split()
    if len(parts) < 2:
        return None
    raw = parts[1].rstrip("=")
    # The base64 crate: canonical padding or none, and no stray trailing bits.
    if len(raw) % 4 == 1 or not re.fullmatch("[A-Za-z0-9+/]*", raw):
        return None
    decoded = base64.b64decode(raw + "=" * (-len(raw) % 4))
    if base64.b64encode(decoded).decode().rstrip("=") != raw:
        return None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    user, colon, pw = text.partition(":")
    ok = colon and user and pw and not any(unicodedata.category(c) == "Cc" for c in text)
    return len(t) if ok else None


def key_placeholder(s):
    """Whether a key is a placeholder or a documentation example, not a
    secret: eight or more `x`, `X`, `*` or `0` in a row
    (`sk_live_XXXXXXXXXXXXXXXX`, `AKIAXXXXXXXXXXXXXXXX`), or AWS's own
    example key ids (`AKIAIOSFODNN7EXAMPLE`)."""
    if s.endswith("EXAMPLE") or "EXAMPLEKEY" in s:
        return True
    run, last = 0, ""
    for c in s:
        filler = c in "xX*0"
        run = run + 1 if filler and (run == 0 or c == last) else 1 if filler else 0
        last = c
        if run >= 8:
            return True
    return False


# --- Cryptocurrency addresses (crypto_address.rs) --------------------------

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
KECCAK_RC = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000, 0x000000000000808B,
    0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008A, 0x0000000000000088,
    0x0000000080008009, 0x000000008000000A, 0x000000008000808B, 0x800000000000008B, 0x8000000000008089,
    0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008]
KECCAK_ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
MASK64 = (1 << 64) - 1


def keccak256(data):
    """Keccak-256 (the original padding, not SHA3-256's), for EIP-55."""
    rol = lambda v, n: ((v << n) | (v >> (64 - n))) & MASK64 if n else v  # noqa: E731
    rate = 136
    msg = bytearray(data) + b"\x01" + b"\x00" * ((-len(data) - 1) % rate)
    msg[-1] |= 0x80
    a = [0] * 25
    for off in range(0, len(msg), rate):
        for i in range(rate // 8):
            a[i] ^= int.from_bytes(msg[off + 8 * i:off + 8 * i + 8], "little")
        for rc in KECCAK_RC:
            c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
            d = [c[(x - 1) % 5] ^ rol(c[(x + 1) % 5], 1) for x in range(5)]
            a = [a[i] ^ d[i % 5] for i in range(25)]
            b = [0] * 25
            for x in range(5):
                for y in range(5):
                    b[y + 5 * ((2 * x + 3 * y) % 5)] = rol(a[x + 5 * y], KECCAK_ROT[x][y])
            a = [b[i] ^ (~b[(i + 1) % 5 + 5 * (i // 5)] & b[(i + 2) % 5 + 5 * (i // 5)]) for i in range(25)]
            a[0] ^= rc
    return b"".join(a[i].to_bytes(8, "little") for i in range(4))


def bech32_polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= gen[i]
    return chk


def segwit(s):
    """`bech32::segwit::decode(s).is_ok()`: length, checksum (bech32 for
    version 0, bech32m after), padding and witness program length."""
    if len(s) > 90:
        return False
    s = s.lower()
    sep = s.rfind("1")
    hrp, data = s[:sep], s[sep + 1:]
    if sep < 1 or len(data) < 7 or any(c not in BECH32 for c in data):
        return False
    values = [BECH32.index(c) for c in data]
    version = values[0]
    if version > 16:
        return False
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    if bech32_polymod(expanded + values) != (1 if version == 0 else 0x2BC830A3):
        return False
    program = values[1:-6]
    padding = len(program) * 5 % 8
    if padding > 4 or (program and program[-1] & ((1 << padding) - 1)):
        return False
    length = len(program) * 5 // 8
    return 2 <= length <= 40 and (version != 0 or length in (20, 32))


def btc(s):
    if len(s) > 3 and s[:3].lower() == "bc1":
        if s != s.lower() and s != s.upper():
            return False
        return segwit(s)
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    raw = b"\x00" * (len(s) - len(s.lstrip("1"))) + (n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")
    if len(raw) != 25 or raw[0] not in (0x00, 0x05):
        return False
    return hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


def eth(s):
    if s[:2] not in ("0x", "0X"):
        return False
    h = s[2:]
    if len(h) != 40 or not all(c in string.hexdigits for c in h):
        return False
    if h == h.lower() or h == h.upper():
        return len(set(h)) > 1
    digest = keccak256(h.lower().encode())
    for i, c in enumerate(h):
        nibble = (digest[i // 2] >> (4 if i % 2 == 0 else 0)) & 0xF
        if c.isalpha() and c.isupper() != (nibble >= 8):
            return False
    return True


# --- Dates of birth (dob.rs) -----------------------------------------------

DATE = (rf"[0-9]{{1,2}}[./-][0-9]{{1,2}}[./-][0-9]{{2,4}}"
        rf"|[0-9]{{4}}[./-][0-9]{{1,2}}[./-][0-9]{{1,2}}"
        rf"|[0-9]{{1,2}}(?:st|nd|rd|th|er|º|°)?\.?[ \t]+(?:de[ \t]+|of[ \t]+)?[^\W\d_]{{3,10}}\.?,?[ \t]+(?:de[ \t]+)?[0-9]{{4}}"
        rf"|[^\W\d_]{{3,10}}\.?[ \t]+[0-9]{{1,2}}(?:st|nd|rd|th)?,?[ \t]+[0-9]{{4}}"
        rf"|[0-9]{{1,2}}[-/ ][^\W\d_]{{3}}\.?[-/ ][0-9]{{4}}")
DOB_CUE = (r"(?i:d\.?o\.?b\.?s?|date[ \t_]+of[ \t_]+birth|dateofbirth|birth[ \t_]?date|birthday|born(?:[ \t]+on)?"
           r"|geboren(?:[ \t]+(?:am|op))?|geboortedatum|geburtsdatum|geburtstag|geb\.(?:-datum|[ \t]+am)?"
           r"|née?(?:\(e\))?(?:[ \t]+le)?|nasci(?:[ \t]+(?:em|a))?|nací(?:[ \t]+el)?|date[ \t_]+(?:de[ \t_]+)?naissance|fecha[ \t_]+(?:de[ \t_]+)?nacimiento"
           r"|fecha[ \t]+(?:de[ \t]+)?nac\.|nacimiento|nacid[oa](?:[ \t]+el)?|data[ \t_]+(?:de[ \t_]+)?nascimento"
           r"|data[ \t]+(?:de[ \t]+)?nasc\.|nascimento"
           r"|nascid[oa](?:[ \t]+em)?|data[ \t]+di[ \t]+nascita|nat[oa][ \t]+il)")
DATE_RX = re.compile(DATE)
ALPHA_RUN = re.compile(r"[^\W\d_]+")
MONTH_SET = frozenset(MONTHS)


DOB_LIST = re.compile(r"(?:,[ \t]*(?:(?:and|or|et|ou|y|o|e|und|oder)[ \t]+)?|[ \t]+(?:and|or|et|ou|y|o|e|und|oder)[ \t]+)")


def dob_list_after(text, end):
    """The dates that continue a list after a date of birth (dob.rs)."""
    out = []
    while True:
        sep = DOB_LIST.match(text, end)
        if not sep:
            return out
        at = sep.end()
        m = DATE_RX.match(text, at)
        if not m:
            return out
        d = text[at:m.end()]
        if dob(d) != (0, len(d)) or (m.end() < len(text) and text[m.end()].isalnum()):
            return out
        out.append((at, m.end()))
        end = m.end()


def dob(s):
    m = DATE_RX.search(s)
    if not m:
        return None
    date = m.group()
    words = [w.lower() for w in ALPHA_RUN.findall(date) if blen(w) >= 3]
    numbers = [int(n) for n in re.findall("[0-9]+", date)]
    if words:
        ok = (words[0] in MONTH_SET and len(numbers) == 2 and any(1 <= n <= 31 for n in numbers)
              and any(1900 <= n <= 2100 for n in numbers))
    elif len(numbers) == 3 and numbers[0] >= 1000:
        y, mo, d = numbers
        ok = 1900 <= y <= 2100 and 1 <= mo <= 12 and 1 <= d <= 31
    elif len(numbers) == 3:
        a, b, y = numbers
        ok = (y < 100 or 1900 <= y <= 2100) and ((1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31))
    else:
        ok = False
    return m.span() if ok else None


# --- Postal addresses (address.rs, detect.rs `addresses`) ------------------

ADDR_SEP = r"(?:,?[ ]|,?\r?\n)"  # between the parts: a comma, a space or a line break
ADDR_COUNTRY = rf"(?:{ADDR_SEP}(?i:{ADDR_COUNTRIES}){UB})?"
ADDR_WORD = r"[A-Z0-9][A-Za-z0-9'.-]*"
ADDR_TOWN = r"[A-Z][A-Za-z.'-]*"
ADDRESS_US = (rf"{UB}[0-9]{{1,6}}[A-Za-z]?(?:-[0-9]{{1,4}})? "
              rf"(?:(?:[NSEW]|North|South|East|West|NE|NW|SE|SW)\.? )?"
              rf"(?:{ADDR_WORD} ){{0,4}}(?i:{US_TYPES})\.?(?: (?:[NSEW]|NE|NW|SE|SW)\.?)?"
              rf"(?:,? (?i:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Rm|Room|Bldg|#)\.? ?#?[A-Za-z0-9-]{{1,6}})?"
              rf"{ADDR_SEP}(?:{ADDR_TOWN} ){{0,3}}{ADDR_TOWN},? (?:{US_STATES})(?:,? [0-9]{{5}}(?:-[0-9]{{4}})?)?{UB}"
              rf"{ADDR_COUNTRY}")
ADDRESS_UK = (rf"(?:(?:Flat|Apartment|Apt|Unit|Suite) [0-9A-Za-z/]{{1,5}}{ADDR_SEP})?"
              rf"(?:[A-Z][a-z]+ (?:House|Cottage|Lodge|Farm|Court|Manor|Barn|Villa|Mansions|Chambers){ADDR_SEP})?"
              rf"{UB}[0-9]{{1,4}}[A-Za-z]?(?:-[0-9]{{1,4}})?,? (?:{ADDR_WORD} ){{1,4}}(?i:{UK_TYPES})\.?"
              rf"(?:{ADDR_SEP}{ADDR_TOWN}(?: {ADDR_TOWN}){{0,2}}){{0,2}}{ADDR_SEP}"
              rf"[A-Z]{{1,2}}[0-9][A-Z0-9]? ?[0-9][ABD-HJLNP-UW-Z]{{2}}{UB}{ADDR_COUNTRY}")
DU, DL = "[A-ZÄÖÜ]", "[a-zäöüß]"
ADDRESS_DE = (rf"(?:{DU}{DL}+(?:-{DU}?{DL}+)*(?:{DE_SUFFIXES})"
              rf"|{DU}{DL}+(?:-{DU}{DL}+)*-(?:{DE_WORDS})"
              rf"|(?:{DU}{DL}+er|Lange|Breite|Hohe|Alte|Neue|Große|Kleine|Obere|Untere|Schöne|Krumme) (?:{DE_WORDS})"
              rf"|(?:Am|An der|An den|Auf der|Auf dem|Im|In der|In den|Zum|Zur|Unter den|Hinter der)"
              rf" {DU}{DL}+(?: {DU}{DL}+)?)"
              rf" [0-9]{{1,4}} ?[a-zA-Z]?(?:[-/][0-9]{{1,4}}[a-z]?)?"
              rf"(?:,? (?:[0-9]{{1,2}}\. (?:Stock|OG|Etage|Obergeschoss)(?: (?:links|rechts|Mitte|li\.|re\.))?"
              rf"|Hinterhaus|Vorderhaus|Seitenflügel|Gartenhaus|Whg\.? ?[0-9]{{1,4}}|Wohnung [0-9]{{1,4}}"
              rf"|App\.? ?[0-9]{{1,4}}))?"
              rf"{ADDR_SEP}(?:D-)?[0-9]{{5}} {DU}{DL}+"
              rf"(?:-{DU}{DL}+| (?:am|an der|im|in|bei|ob der|vor der) {DU}{DL}+| \({DU}{DL}+\))?{ADDR_COUNTRY}")
FR_L = r"(?:[^\W\d_]|['’-])"  # Rust's [\p{L}'’-]
ADDRESS_FR = (rf"(?:(?:(?:Appt|Appartement|Apt)\.? [0-9A-Z]{{1,5}}|Bât(?:\.|iment) [A-Z0-9]{{1,3}}"
              rf"|Résidence(?: [{LU}]{FR_L}*){{1,3}}|Escalier [A-Z0-9]{{1,3}}|Porte [0-9A-Z]{{1,4}}"
              rf"|[0-9]{{1,2}}(?:e|er|ème) étage){ADDR_SEP})*"
              rf"{UB}[0-9]{{1,4}}(?: ?(?:bis|ter|quater|B|C))?,? (?i:{FR_TYPES})"
              rf"(?: (?:[^\W\d_]|['’.-])+){{1,6}}?{ADDR_SEP}(?:(?:BP|CS) [0-9]+,? )?[0-9]{{5}} "
              rf"(?:(?:Le|La|Les|L'|LE|LA|LES) ?)?[{LU}]{FR_L}*"
              rf"(?: (?:sur|sous|en|lès|d'|de|du) ?[{LU}]{FR_L}*)?"
              rf"(?: (?i:cedex)(?: [0-9]{{1,2}})?)?{ADDR_COUNTRY}")
ADDRESS_FORMS = [re.compile(p) for p in (ADDRESS_US, ADDRESS_UK, ADDRESS_DE, ADDRESS_FR)]


def address(text, start, end, form):
    """`address::check`: the German form starts at a letter, which must not
    be inside a word; a sentence's full stop after the town is not part of
    the address."""
    if form == 2 and start > 0 and text[start - 1].isalnum():
        return None
    trimmed = text[start:end].rstrip("., '’")
    return (start, start + len(trimmed)) if trimmed else None


def find_addresses(text, tokens):
    """Every address in `text` outside the tokens, as detect.rs `addresses`
    scans them with an automaton of their own: the leftmost match of the
    forms (the first form where several start at the same place); kept if
    it checks, else the scan moves one character on."""
    out, pos = [], 0
    ahead = [None] * len(ADDRESS_FORMS)  # each form's next match from `pos`
    while pos < len(text):
        best = None
        for form, rx in enumerate(ADDRESS_FORMS):
            m = ahead[form]
            if m is None or (m is not False and m.start() < pos):
                m = ahead[form] = rx.search(text, pos) or False
            if m and (best is None or m.start() < ahead[best].start()):
                best = form
        if best is None:
            break
        m = ahead[best]
        sp = address(text, m.start(), m.end(), best)
        if sp is not None and within_words(text, *sp) and not any(s < sp[1] and sp[0] < e for s, e in tokens):
            out.append(sp)
            pos = sp[1]
        else:
            pos = m.start() + 1
    return out


# --- Patterns (detect.rs `builtin_patterns`), in `Kind::ALL` order ----------

A, U = re.ASCII, 0  # ASCII patterns (`\b` is Rust's `(?-u:\b)`), Unicode ones
WS = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # Rust's Unicode `\s`
API_KEY = (r"\b(?:sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"
           r"|xox[abposer]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}"
           r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9+/=]{24,}"
           r"|AIza[A-Za-z0-9_-]{35}|ya29\.[A-Za-z0-9_-]{20,}"
           r"|hf_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}|gl(?:dt|ptt|rt|cbt)-[A-Za-z0-9_-]{20,}"
           r"|npm_[A-Za-z0-9]{36}|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"
           r"|SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}|shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"
           r"|do[por]_v1_[a-f0-9]{64}|dapi[a-f0-9]{32}(?:-[0-9]+)?|gsk_[A-Za-z0-9]{48,}"
           r"|r8_[A-Za-z0-9]{37}|lin_api_[A-Za-z0-9]{40}|ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43}"
           r"|hvs\.[A-Za-z0-9_-]{24,}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}|SK[0-9a-f]{32}"
           r"|key-[0-9a-zA-Z]{32}|ATATT3[A-Za-z0-9_=-]{20,}|dp\.pt\.[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}"
           r"|[0-9]{8,10}:AA[A-Za-z0-9_-]{33})")
PATTERNS = [
    ("private_key", [
        (r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----", A),
        (r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\r\n]+(?:[A-Za-z0-9+/=:\- ]*[\r\n]+)*[A-Za-z0-9+/=]{16,}", A),
    ]),
    ("bearer", [(r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/-]{16,}=*", A)]),
    ("basic_auth", [(r"\b(?i:basic)[ \t]+[A-Za-z0-9+/]{8,}={0,2}", A)]),
    ("jwt", [(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", A)]),
    ("webhook_url", [(r"https://(?:hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{8,}"
                      r"|(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{5,}/[A-Za-z0-9_-]{20,}"
                      r"|[A-Za-z0-9-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/_.-]{20,})", A)]),
    ("password", [
        (rf"""[A-Za-z][A-Za-z0-9+.-]{{1,15}}://[^{WS}/?#@:<>"']{{0,64}}:[^{WS}/?#<>"']{{1,128}}@""", U),
        (r"(?i:password|passwd|pwd|passphrase|pass|secret|client_secret|api_?key|access_token|auth_token|token)"
         rf"""=[^{WS}&;"'<>]{{3,}}""", U),
        (rf"""(?i:thin):[A-Za-z0-9_$#]{{1,30}}/[^{WS}/@<>"']{{1,128}}@""", U),
        (r"""(?i:password|passwd|passphrase|pwd|client_secret|secret_key|passwort|kennwort|mot de passe|senha|"""
         r"""contraseña|contrasena|palavra-passe)["']?[ \t]*[:=][ \t]*["']"""
         rf"""[^{WS}"'<>]{{3,128}}["']""", U),
        (r"(?i:password|passwd|passphrase|pwd|passwort|kennwort|mot de passe|senha|contraseña|contrasena|palavra-passe)"
         rf"""[ \t]*[:=][ \t]*[^{WS}"'<>,;]{{3,128}}""", U),
        (r"(?i:password|passwort|kennwort|passcode|mot de passe|senha|contraseña|contrasena)[^\n:=]{0,60}?[ \t]"
         rf"""(?i:is|ist|lautet|est|es|é|was|war)[ \t]+[^{WS}"'<>]{{6,64}}""", U),
        (r"(?i:temporary|temp|new|initial|one-time|neues|temporäres|vorläufiges|nouveau|provisoire|nueva|temporal|"
         r"nova|provisória)[ \t]+(?i:password|passwort|kennwort|mot de passe|contraseña|senha)"
         rf"""[ \t]+[^{WS}"'<>]{{6,64}}""", U),
        (rf"""(?i:mysql|mysqldump|mysqladmin|mariadb)[ \t][^\n]{{0,120}}?[ \t]-p[^{WS}"'<>]{{3,128}}""", U),
    ]),
    ("aws_key", [(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", A)]),
    ("cloud_secret", [
        (r"(?i:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key|aws[ \t]+secret(?:[ \t]+access)?[ \t]+key)"
         r"""["']?[ \t]*[:=]?[ \t]*["']?[A-Za-z0-9/+]{40}\b""", A),
        (r"(?:AccountKey|SharedAccessKey|SharedAccessSignature)=[A-Za-z0-9+/%]{40,}={0,2}", A),
        (r"\b[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}", A),
        (r'"private_key_id"[ \t]*:[ \t]*"[0-9a-f]{40}"', A),
        (r"\bGOCSPX-[A-Za-z0-9_-]{28}", A),
        (r"[?&]sig=[A-Za-z0-9%+/=]{40,}", A),
    ]),
    ("api_key", [(API_KEY, A)]),
    ("email", [(rf"[\w.%+{M}-]+@(?:[^\W_]|[{M}-])+(?:[.。．｡](?:[^\W_]|[{M}-])+)*[.。．｡]"
                rf"(?:xn--[A-Za-z0-9-]{{2,}}|[^\W\d_](?:[^\W\d_]|[{M}])+)", U)]),
    # address: scanned on its own (`find_addresses`), first priority.
    ("passport", [(r"(?i:passport|reisepass|passeport|pasaporte|passaporte|passaporto|passnummer|pass-nr\.?)"
                   r"(?i:[ \t_-]*(?:numbers?|nummer|num[ée]ro|n[úu]mero|no\.?|nr\.?|n\.?[°º]\.?|#))?"
                   rf"""(?i:[ \t]+(?:is|was|ist|est|es|é))?[ \t]*[-:#(="'/]*[ \t]*["']?[A-Za-z0-9]{{6,9}}{UB}""", U)]),
    ("dob", [(rf"""{UB}{DOB_CUE}(?:[ \t\r\n]*(?i:is|was|ist|est|es|é|c|le|el|em|as|(?:keyed|entered|given|listed|recorded|stated)[ \t]+as|shows|reads|on[ \t]+(?:file|record)|[:=,(\-"']))*[ \t\r\n]*(?:{DATE})""", U)]),
    ("iban", [(r"\b(?i:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30})\b", A)]),
    ("btc_address", [(r"\b(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[02-9ac-hj-np-z]{11,71}|BC1[02-9AC-HJ-NP-Z]{11,71})\b", A)]),
    ("eth_address", [(r"\b0[xX][0-9a-fA-F]{40}\b", A)]),
    ("it_fiscal_code", [(r"\b(?i:[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z])\b", A)]),
    ("fr_nir", [(r"\b[1-478] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b", A)]),
    ("es_dni", [(r"\b(?:[0-9]{8}|[0-9]{2}\.[0-9]{3}\.[0-9]{3}|[XYZxyz]-?[0-9]{7})-?[A-Za-z]\b", A)]),
    ("uk_nino", [(r"\b(?i:QQ|[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])[ -]?[0-9]{2}[ -]?[0-9]{2}[ -]?[0-9]{2}[ -]?(?i:[A-D])\b", A)]),
    ("in_pan", [(r"\b[A-Z]{3}[PCHFATBLJG][A-Z][0-9]{4}[A-Z]\b", A)]),
    ("card", [(r"\b[0-9](?:[ -]?[0-9]){12,22}\b", A)]),
    ("br_cpf", [(r"\b[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}\b", A)]),
    ("in_aadhaar", [(r"\b[2-9][0-9]{3}[ -]?[0-9]{4}[ -]?[0-9]{4}\b", A)]),
    ("de_tax_id", [(r"\b[1-9][0-9](?: ?[0-9]{3}){3}\b", A)]),
    ("ssn", [(r"\b(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})\b", A), (r"\b[0-9]{9}\b", A)]),
    ("ca_sin", [(r"\b[0-79][0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{3}\b", A)]),
    ("aba_routing", [(r"\b[0-3678][0-9]{8}\b", A)]),
    ("bic", [(r"\b[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\b", A)]),
    ("phone", [
        (r"(?:\+|\b00)[1-9][0-9]{0,3}(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}", A),
        (r"(?:\b1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}\b", A),
        (r"\b0[1-9][0-9]{0,4}(?:[ /-][0-9]{2,8}){1,4}\b", A),
        (r"\b0[1-9][0-9]{8,11}\b", A),
        (r"\b(?:[3-9][0-9]{2,4}(?:[ .-]?[0-9]{2,5}){1,3}|[1-9][0-9](?: [0-9]{3} [0-9]{4}|[0-9]{7,9}))\b", A),
        (r"\b0[1-9](?:\.[0-9]{2}){4}\b", A),
        (r"\([1-9][0-9]\) ?9?[0-9]{4}-?[0-9]{4}\b", A),
        (r"\(0[1-9][0-9]{1,4}\) ?[0-9]{3,8}(?:[ -][0-9]{2,8})?\b", A),
        (r"\b3[0-9]{2}/[0-9]{6,7}\b", A),
        (r"\b[1-9][0-9] 9[0-9]{4}[ -][0-9]{4}\b", A),
        (r"\b[1-9][0-9] [2-5][0-9]{3}-[0-9]{4}\b", A),
    ]),
    ("ipv4", [(r"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b", A)]),
    ("ipv6", [(r"\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}", A)]),
    # person: found by the names pass below, not by a pattern.
]


COMPILED = [(kind, [re.compile(p, flags) for p, flags in forms]) for kind, forms in PATTERNS]
API_KEY_RX = re.compile(API_KEY, re.ASCII)


def span(kind, form, text, start, end):
    """The span of the value a match of `kind` (form `form`) at `start:end`
    stands for, if its validator accepts it (detect.rs `span`)."""
    s = text[start:end]

    def alone():
        # A national id is a number of its own, not part of a longer grouped one.
        if end + 1 < len(text) and text[end] in " -." and text[end + 1] in DIGITS:
            return False
        return not (start >= 2 and text[start - 1] in " -." and text[start - 2] in DIGITS)

    def whole(ok):
        return (start, end) if ok else None

    def whole_id(ok):
        return (start, end) if ok and alone() else None

    def prefix(n):
        return None if n is None else (start, start + n)

    def inner(sp):
        return None if sp is None else (start + sp[0], start + sp[1])

    if kind == "card":
        return prefix(card(s))
    if kind == "iban":
        return prefix(iban(s))
    if kind == "ssn":
        return whole_id(ssn(s) and (form == 0 or (
            near(text, start, end, CX_SSN)
            and not (ca_sin(s) and has_word(text, back(text, start, 16), start, CX_SIN)))))
    if kind == "phone":
        return prefix(phone(text, start, s, form))
    if kind == "bearer":
        return prefix(bearer(s))
    if kind == "basic_auth":
        return prefix(basic_auth(s))
    if kind == "ipv4":
        return whole(ipv4(text, start, end))
    if kind == "ipv6":
        return prefix(ipv6(s))
    if kind == "email":
        return email(text, start, end)
    if kind == "password":
        sp = inner(password_pair(s, True) if form == 3 else password_pair(s, False) if form == 4
                   else prose_password(s) if form in (5, 6) else mysql_password(s) if form == 7 else password(s))
        if sp is not None:
            # `HF_TOKEN=hf_...` is an API key of a known provider: found as one.
            m = API_KEY_RX.match(text[sp[0]:sp[1]])
            if m and m.end() == sp[1] - sp[0]:
                return None
        return sp
    if kind == "cloud_secret":
        return inner(cloud_secret(s))
    if kind == "passport":
        return inner(passport(s))
    if kind == "dob":
        return inner(dob(s))
    if kind == "uk_nino":
        return whole(uk_nino(s))
    if kind == "de_tax_id":
        return whole_id(de_tax_id(s) and (not is_compact(s) or near(text, start, end, CX_DE_TAX_ID)))
    if kind == "fr_nir":
        return whole_id(fr_nir(s))
    if kind == "es_dni":
        return whole_id(es_dni(s))
    if kind == "it_fiscal_code":
        return whole(it_fiscal_code(s))
    if kind == "in_aadhaar":
        return whole_id(aadhaar(s) and (" " in s or near(text, start, end, CX_AADHAAR)
                                        or token_near(text, start, end, in_pan)))
    if kind == "in_pan":
        return whole(in_pan(s))
    if kind == "br_cpf":
        return whole_id(br_cpf(s) and ("." in s or near(text, start, end, CX_CPF)))
    if kind == "ca_sin":
        return whole_id(ca_sin(s) and near(text, start, end, CX_SIN))
    if kind == "aba_routing":
        return whole_id(aba_routing(s) and near(text, start, end, CX_ABA))
    if kind == "bic":
        return whole(bic(s) and (near(text, start, end, CX_BIC) or after_iban(text, start))
                     and not in_capitals(text, start, end, s))
    if kind == "btc_address":
        return whole(btc(s))
    if kind == "eth_address":
        return whole(eth(s))
    if kind == "address":
        return address(text, start, end, form)
    if kind in ("aws_key", "api_key"):
        return whole(not key_placeholder(s))
    return (start, end)  # jwt, private_key, webhook_url


def validated(kind, form, text, start, end):
    sp = span(kind, form, text, start, end)
    mysql = kind == "password" and form == 7  # `-p<password>` starts inside a word
    return sp if sp is not None and (mysql or within_words(text, sp[0], sp[1])) else None


def within_words(text, start, end):
    """Neither starts nor ends inside a word (ASCII letters, digits, `_`)."""
    if end < len(text) and end > start and text[end] in WORD and text[end - 1] in WORD:
        return False
    return not (0 < start < len(text) and text[start - 1] in WORD and text[start] in WORD)


# --- Person names (names.rs) -----------------------------------------------

FIRST, LAST, AMBIGUOUS, STOP, TITLE, GREETING, LABEL, PARTICLE, VERB = 1, 2, 4, 8, 16, 32, 64, 128, 256
SIGNOFF, NAME_LABEL, PREP = 512, 1024, 2048
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def _gazetteer():
    words = {}
    for name, flag in (("first_names.txt", FIRST), ("last_names.txt", LAST)):
        with open(os.path.join(DATA, name), encoding="utf-8") as f:
            for w in f.read().split("\n"):
                w = w.rstrip("\r")
                if w:
                    words[w] = words.get(w, 0) | flag
    for lst, flag in ((AMBIGUOUS_WORDS, AMBIGUOUS), (STOP_WORDS, STOP), (TITLES, STOP | TITLE),
                      (GREETINGS, STOP | GREETING), (LABELS, STOP | LABEL), (VERBS, STOP | VERB),
                      (SIGNOFFS, STOP | GREETING | SIGNOFF), (NAME_LABELS, STOP | LABEL | NAME_LABEL),
                      (PREPS, STOP | PREP), (PARTICLES, PARTICLE)):
        for w in lst:
            words[w] = words.get(w, 0) | flag
    return words


WORDS = _gazetteer()
# For each first byte (ASCII lower-cased), a bit per byte length of the cue
# words and particles starting with it.
CUE_SHAPES = [0] * 256
for _w in itertools.chain(TITLES, GREETINGS, LABELS, VERBS, PARTICLES, NAME_LABELS, PREPS):
    _b = _w.encode()
    CUE_SHAPES[_b[0]] |= 1 << min(len(_b), 31)
NOT_AFTER_SET, NOT_BEFORE_SET, PARTICLE_SET = frozenset(NOT_AFTER), frozenset(NOT_BEFORE), frozenset(PARTICLES)
FOLLOWER_SET = frozenset(FOLLOWERS)
# What lies between two names of a list.
LIST_GAPS = frozenset([", ", " and ", " und ", " et ", " y ", " e ", ", and ", " & ", "; "])
SUFFIX_TUPLE = tuple(SUFFIXES)
# A word: letters with inner apostrophes and hyphens (combining accents kept).
WORD_RX = re.compile(r"[^\W\d_]+(?:(?:[\u0300-\u036f]+|['’-](?=[^\W\d_]))[^\W\d_]*)*")
HAS_ALPHA = re.compile(r"[^\W\d_]")
CUE_NONE, CUE_TITLE, CUE_GREETING, CUE_LABEL, CUE_VERB, CUE_NAME_LABEL, CUE_PREP, CUE_MENTION = range(8)


class Word:
    """`start`, `end`; `looked`: whether it was looked up (`flags` is 0 when
    not); `cap`: starts upper case; `caps`: every letter upper case (two
    letters or more); `initial`: one letter and a dot."""
    __slots__ = ("start", "end", "looked", "cap", "caps", "initial", "flags")


def blen_gt1(w):
    """Whether `w` is longer than one byte."""
    return len(w) > 1 or not w.isascii()


def cue_shaped(w):
    """Whether `w` may be a cue word or a particle (first byte and length)."""
    b = w if w.isascii() else w.encode()
    n = len(b)
    first = ord(b[0]) if isinstance(b, str) else b[0]
    return n < 31 and CUE_SHAPES[first | 0x20 if 65 <= first <= 90 else first] & (1 << n) != 0


def lower(word):
    """A word in lower case, as the lists hold it."""
    if word.isascii():
        return word.lower()
    return word.lower().replace("’", "'")


def words_of(text, skip):
    out = []
    k, nskip = 0, len(skip)
    # Whether the last three words were cue-shaped: the three words after a
    # cue are looked up.
    shaped1 = shaped2 = shaped3 = False
    for m in WORD_RX.finditer(text):
        start, end = m.span()
        if nskip:
            while k < nskip and skip[k][1] <= start:
                k += 1
            if k < nskip and skip[k][0] < end:
                shaped1 = shaped2 = shaped3 = False
                continue
        w = m.group()
        cap = w[0].isupper()
        one_letter = len(w) == 1
        shaped = not cap and cue_shaped(w)
        # Only capitalised words, cue-shaped words and the three words after
        # one are looked up.
        looked = cap or shaped or shaped1 or shaped2 or shaped3
        word = Word()
        word.start, word.end, word.looked, word.cap = start, end, looked, cap
        word.caps = cap and not one_letter and not any(c.islower() for c in w)
        word.initial = one_letter and text.startswith(".", end)
        word.flags = flags(lower(w)) if looked else 0
        out.append(word)
        shaped3, shaped2, shaped1 = shaped2, shaped1, shaped
    return out


def flags(lower):
    """Flags of a word in the gazetteers (0 if unknown). Hyphenated names
    ("Jean-Luc", "Smith-Jones") are known when every part is."""
    if not lower:
        return 0
    f = WORDS.get(lower)
    if f is not None:
        return f
    stem = strip_suffix(lower)
    if stem is not None:
        return flags(stem)
    if "-" in lower:
        all_first, ambiguous, last_part = True, 0, 0
        for part in lower.split("-"):
            f = WORDS.get(part, 0)
            if f & STOP:
                return STOP
            if not f & (FIRST | LAST):
                return 0
            all_first = all_first and f & FIRST != 0
            ambiguous |= f & AMBIGUOUS
            last_part = f
        return (FIRST if all_first else 0) | (last_part & LAST) | ambiguous
    if len(lower) >= 7 and lower.endswith(NOUN_ENDINGS):
        return STOP  # an unknown word that ends as nouns do (names.rs `noun_ending`)
    return 0


NOUN_ENDINGS = ("ung", "ungen", "heit", "keit", "schaft", "tät", "tion", "ción", "ção", "ismus")


def strip_suffix(lower):
    """The word without a possessive or honorific ending, if it has one."""
    if not lower.endswith(SUFFIX_TUPLE):
        return None
    for s in SUFFIXES:
        if lower.endswith(s):
            stem = lower[:-len(s)]
            return stem if stem else None
    return None


def trim_suffix(text, start, end):
    """`end` moved back before a possessive or honorific ending."""
    word = text[start:end]
    for s in itertools.chain(SUFFIXES, ["’s"]):
        if len(word) > len(s) and ascii_lower(word[-len(s):]) == s:
            return end - len(s)
    return end


def tight(gap):
    """Only spaces and light punctuation (six bytes at most)."""
    return len(gap) <= 6 and all(c in " \t,:.-=\"'(_" for c in gap)


def cue(text, w, i):
    """What the text right before word `i` says about it."""
    start, end = w[i].start, w[i].end
    mention = (start > 0 and text[start - 1] == "@"
               and (start < 2 or not (text[start - 2].isascii() and text[start - 2].isalnum()))
               and blen_gt1(text[start:end]) and not text.startswith(".", end))
    if mention and w[i].cap:
        return CUE_MENTION
    if i == 0:
        return CUE_NONE
    p = w[i - 1]
    gap = text[p.end:start]
    if not p.looked:
        return CUE_NONE
    f = p.flags
    if f & SIGNOFF:
        g = gap.lstrip(",!. ")
        return CUE_GREETING if g.startswith("\n") or g.startswith("\r\n") or (tight(gap) and "." not in gap) else CUE_NONE
    if not tight(gap) or (("\"" in gap or "'" in gap) and "," in gap):
        # The cue ends one field and the word starts another.
        return CUE_NONE
    if "." in gap and not f & TITLE:
        # A full stop ends the cue's sentence; only a title has one.
        return CUE_NONE
    if f & TITLE and (p.cap or p.caps):
        # "Sehr geehrter Herr Müller": the title, not the greeting.
        return CUE_TITLE
    if f & GREETING:
        return CUE_GREETING
    if f & NAME_LABEL:
        return CUE_NAME_LABEL
    if f & LABEL:
        return CUE_LABEL
    if f & VERB:
        return CUE_VERB
    if f & PREP:
        return CUE_PREP
    return CUE_NONE


def sentence_start(text, start):
    for c in reversed(text[:start]):
        if c in ".!?:\n\r\"([>*#":
            return True
        if not (c.isspace() or c in "'«“-"):
            return False
    return True


def find_names(text, skip):
    """Every person name in `text` outside the `skip` spans (sorted), left
    to right."""
    if not HAS_ALPHA.search(text):
        return []
    w = words_of(text, skip)
    out, i = [], 0
    while i < len(w):
        # "attendees: Thijs Verhoeven, Raghav Bhatnagar, M. Dvořák and ...":
        # a name right after another, in a list, has the list's cue.
        in_list = bool(out) and w[i].start - out[-1][1] <= 6 and text[out[-1][1]:w[i].start] in LIST_GAPS
        if not w[i].cap and not w[i].looked:
            i += 1
            continue
        f = w[i].flags
        bare_particle = f & PARTICLE and not f & (FIRST | LAST)
        if w[i].cap and bare_particle and i + 1 < len(w) and w[i + 1].cap:
            # "Lo Russo, Speranza": the particle joins the name that follows.
            i += 1
            continue
        j = None if in_list else last_comma_first(text, w, i)
        if j is None:
            j = name_at(text, w, i, in_list)
        if j is None:
            i += 1
        else:
            out.append((with_particles(text, w, i), trim_suffix(text, w[j].start, w[j].end)))
            i = j + 1
    # The speakers of a chat transcript (speakers.rs).
    sp = [x for x in find_speakers(text, skip) if not any(a < x[1] and x[0] < z for a, z in out)]
    if sp:
        out = sorted(out + sp)
    return out


SPEAKER_ROLES = frozenset(["author", "committer", "reporter", "assignee", "approver", "requester", "sender", "recipient", "autor", "auteur", "a", "q", "ai", "bot", "me", "you", "user", "users", "assistant", "system", "human", "agent",
    "customer", "client", "cliente", "kunde", "kundin", "support", "admin", "operator", "host",
    "guest", "moderator", "caller", "note", "notes", "todo", "fixme", "fyi", "nb", "ps", "re",
    "fwd", "subject", "from", "to", "cc", "bcc", "date", "time", "status", "error", "warning",
    "warn", "info", "debug", "trace", "fatal", "step", "update", "question", "answer", "summary",
    "action", "actions", "result", "results", "response", "request", "reply", "input", "output",
    "prompt", "context", "example", "task", "goal", "issue", "problem", "solution", "fix",
    "cause", "impact", "next steps", "decision", "owner", "reviewer", "team", "channel",
    "thread", "message", "body", "title", "name", "email", "phone", "address", "tel", "mobile",
    "iban", "bic", "amount", "total", "balance", "reason", "comment", "comments", "remarks",
    "details", "description", "priority", "severity", "category", "type", "source", "target",
    "host", "env", "url", "path", "file", "line", "code", "key", "value", "id", "ref",
    "objet", "betreff", "asunto", "assunto", "datum", "fecha", "data", "hinweis", "nota",
    "remarque", "resumen", "resumo", "zusammenfassung", "résumé", "agente", "atendente",
    "sachbearbeiter", "conseiller", "conseillère", "kundin", "usuario", "usuário", "utilisateur",
    "benutzer", "sistema", "système"])


def speaker_word_end(line, j):
    end, k = j, j
    while k < len(line):
        c = line[k]
        nxt = line[k + 1] if k + 1 < len(line) else ""
        ok = c.isalpha() or (k > j and ("\u0300" <= c <= "\u036f" or (c in "-'’." and nxt.isalpha())))
        if not ok:
            break
        k += 1
        end = k
    return end


def speaker_label(text, at):
    """The speaker label at the start of the line at `at`: (start, end,
    words) or None (speakers.rs `label_at`)."""
    nl = text.find("\n", at)
    line = text[at:len(text) if nl < 0 else nl]
    i = 0
    if line.startswith("["):
        close = line.find("]")
        if close < 0:
            return None
        i = close + 1
        i += len(line[i:]) - len(line[i:].lstrip())
    words, j = [], i
    while True:
        w_start = j
        j = speaker_word_end(line, j)
        if j == w_start:
            return None
        words.append((at + w_start, at + j))
        after = line[j:]
        # A role and the speaker in brackets, or the speaker and a role.
        label = (at + i, at + j, list(words))
        colon_at = j
        if after.startswith(" ("):
            a = j + 2
            z = speaker_word_end(line, a)
            if z > a and line[z:].startswith(")"):
                if line[i:j].lower() in SPEAKER_ROLES:
                    label = (at + a, at + z, [(at + a, at + z)])
                colon_at = z + 1
        after = line[colon_at:]
        if after.startswith(":") or after.startswith(" :"):
            colon = colon_at + after.find(":")
            message = line[colon + 1:]
            if not message[:1].isspace() or len(message.split()) < 2 or len(words) > 3:
                return None
            return label
        if not after.startswith(" ") or len(words) == 3:
            return None
        j += 1


def find_speakers(text, skip):
    if ":" not in text:
        return []

    def first_name(wd):
        f = flags(lower(wd))
        return bool(f & FIRST) and not f & (STOP | AMBIGUOUS)

    def listed(wd):
        return bool(flags(lower(wd)) & (AMBIGUOUS | STOP | TITLE | GREETING | LABEL | VERB | SIGNOFF | NAME_LABEL | PREP))
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    labels = []
    for at in starts:
        if at >= len(text):
            continue
        lab = speaker_label(text, at)
        if lab is None or any(a < lab[1] and lab[0] < z for a, z in skip):
            continue
        a, z, ws = lab
        if text[a:z].lower() in SPEAKER_ROLES:
            continue
        if not all((x.lower() not in SPEAKER_ROLES and not listed(x.lower()) and "." not in x) or first_name(x.lower())
                   for x in (text[p:q] for p, q in ws)):
            continue
        if not any(c.islower() for c in text[a:z]):
            continue
        labels.append(lab)

    def named(lab):
        return any(first_name(text[p:q]) for p, q in lab[2])
    transcript = any(named(l) for l in labels) and len({text[l[0]:l[1]].lower() for l in labels}) >= 2
    return [(l[0], l[1]) for l in labels if named(l) or (transcript and len(l[2]) == 1)]


def with_particles(text, w, i):
    """The start of a name at word `i`, moved back over the particles of its
    surname ("VON STETTEN Gudrun", "van der Heijden, Bram" where a line or a
    field starts)."""
    k = i
    while k > 0:
        p = w[k - 1]
        ok = text[p.end:w[k].start] == " " and p.flags & PARTICLE
        if ok and not (p.caps and w[i].caps):
            ok = not p.cap or not p.flags & (FIRST | LAST)
            if ok:
                # Lower-case particles only where a field starts.
                m = k - 1
                while m > 0 and w[m - 1].flags & PARTICLE and text[w[m - 1].end:w[m].start] == " ":
                    m -= 1
                ok = w[m].start == 0 or text[w[m].start - 1] in "\n;,:(\"'\t"
        if not ok:
            break
        k -= 1
    return w[k].start


def last_comma_first(text, w, i):
    """A name written "Last, First" starting at word `i`: its last word."""
    if i + 1 >= len(w):
        return None
    a, b = w[i], w[i + 1]
    if not a.cap or not b.cap or text[a.end:b.start] != ", " or a.caps != b.caps or not blen_gt1(text[b.start:b.end]):
        return None
    fa, fb = a.flags, b.flags
    clean = lambda x: not x & (STOP | AMBIGUOUS)  # noqa: E731
    cued = cue(text, w, i) in (CUE_LABEL, CUE_NAME_LABEL, CUE_TITLE, CUE_GREETING)
    ok = (not fa & STOP and not fb & STOP
          and ((fa & LAST and fb & FIRST and (clean(fa) or clean(fb)))
               # "Cliente: Mittermaier, Ursula": after a label, one known half.
               or (cued and ((fb & FIRST and clean(fb)) or (fa & LAST and clean(fa))))))
    # "Smith, John, and ..." is fine; "Smith, John Paul" takes both.
    end = i + 1
    if i + 2 < len(w):
        c = w[i + 2]
        if c.cap and text[b.end:c.start] == " " and c.flags & FIRST:
            end = i + 2
    return end if ok else None


def name_at(text, w, i, in_list):
    """The last word of a name starting at word `i`, if one does (`in_list`:
    right after another name, in a list)."""
    first = w[i]
    particle_after_title = (not first.cap and first.flags & PARTICLE
                            and text[first.start:first.end] not in ("der", "den", "ter", "ten", "zu")
                            and cue(text, w, i) == CUE_TITLE)
    if not first.cap and not particle_after_title and (not first.looked or not lower_after_cue(text, w, i)):
        return None
    c = cue(text, w, i)
    if c == CUE_NONE and in_list:
        c = CUE_LABEL
    next_adjacent_cap = i + 1 < len(w) and w[i + 1].cap and text[first.end:w[i + 1].start] == " "
    known_first = first.flags & (FIRST | LAST) and not first.flags & STOP
    if first.caps and not next_adjacent_cap and not (c in (CUE_TITLE, CUE_NAME_LABEL) and known_first):
        # One word in capitals is an acronym ("Client NINO ...").
        return None
    # The run of name-shaped words: up to four, particles inside allowed.
    run, k = [i], i
    while len(run) < 4 and k + 1 < len(w):
        gap = text[w[k].end:w[k + 1].start]
        if not (gap == " " or (w[k].initial and gap == ". ")):
            break
        nxt = w[k + 1]
        if nxt.flags & PARTICLE and not (nxt.cap and nxt.flags & (FIRST | LAST)):
            # A particle counts only when a capitalised word follows it.
            m = k + 1
            while m + 1 < len(w) and w[m + 1].flags & PARTICLE and text[w[m].end:w[m + 1].start] == " ":
                m += 1
            if m + 1 < len(w) and w[m + 1].cap and text[w[m].end:w[m + 1].start] == " ":
                run.append(m + 1)
                k = m + 1
                continue
            break
        if first.cap or particle_after_title:
            # "CHOI Seo-yeon": a surname in capitals, then the first name.
            shaped = nxt.cap and (first.caps == nxt.caps or nxt.initial or (first.caps and k == i))
        else:
            # "de fatima zahra benali est": an unknown lower-case word ends a
            # name when the sentence goes on after it.
            shaped = not nxt.cap and (nxt.flags & (FIRST | LAST) or (
                nxt.flags == 0 and blen(text[nxt.start:nxt.end]) >= 3 and ends_name(text, w, k + 1)))
        if not shaped or (nxt.flags & STOP and not nxt.initial):
            break
        run.append(k + 1)
        k += 1
    # Drop stop words from the end, and an initial left last.
    f = [w[x].flags for x in run]
    if particle_after_title:
        # "Mr de Vries", "Madame van der Berg".
        return run[-1] if len(run) > 1 else None
    if f[0] & STOP:
        return None
    n = len(run)
    while n > 1 and (f[n - 1] & STOP or w[run[n - 1]].initial):
        n -= 1
    best = None
    # The longest run that is a name.
    while n >= 1:
        # "From: Ségolène Duchâtel <segolene@...>": a name before an address.
        end = w[run[n - 1]].end
        if n >= 2 and text.startswith(" <", end) and all(w[x].cap for x in run[:n]):
            gt = text.find(">", end)
            mail_follows = text.find("@", end, gt if gt >= 0 else len(text)) >= 0
        else:
            mail_follows = False
        if mail_follows or accept(text, w, run[:n], f[:n], c):
            best = run[n - 1]
            break
        n -= 1
    if best is None or not_people(text, w, i, best):
        return None
    return best


def ends_name(text, w, k):
    """Whether the name can end at word `k`: punctuation, the text's end or a
    verb follows it."""
    end = w[k].end
    if end >= len(text) or text[end] in ",.?!;)'’\"\n":
        return True
    if k + 1 < len(w):
        n = w[k + 1]
        return text[end:n.start] == " " and lower(text[n.start:n.end]) in FOLLOWER_SET
    return False


def lower_after_cue(text, w, i):
    """Whether a lower-case word may start a name: after a greeting or label."""
    return (cue(text, w, i) in (CUE_GREETING, CUE_LABEL, CUE_TITLE, CUE_VERB, CUE_NAME_LABEL, CUE_PREP)
            and w[i].flags & (FIRST | LAST) != 0 and w[i].flags & (STOP | AMBIGUOUS) == 0)


def run_is_plain(text, w, run):
    """Whether the run's words follow each other with single spaces (no
    particle skipped between them) and its cue word is in lower case (not an
    article starting a sentence: "Das Depot von ...")."""
    first = run[0]
    return (first > 0 and not w[first - 1].cap
            and all(b == a + 1 and (text[w[a].end:w[b].start] == " "
                                    or (w[a].initial and text[w[a].end:w[b].start] == ". "))
                    for a, b in zip(run, run[1:])))


def accept(text, w, run, f, c):
    def known(x):
        return x & (FIRST | LAST) != 0 and x & STOP == 0

    def clean(x):
        return known(x) and x & AMBIGUOUS == 0

    def initial(j):
        return w[run[j]].initial

    n = len(run)
    capitalised = all(w[x].cap for x in run)
    if n == 1 and (not blen_gt1(text[w[run[0]].start:w[run[0]].end]) or f[0] & PARTICLE):
        # `last_name = 'X'`: one letter is no name; nor "Le" alone ("Le
        # service clients").
        return False
    # The arms of the Rust `match`, in order (a guard that fails falls
    # through to the next arm).
    if c in (CUE_TITLE, CUE_NAME_LABEL, CUE_MENTION):
        return w[run[0]].cap or known(f[0])
    # Capitalised words around middle initials, one a known name.
    if (n >= 3 and capitalised and not initial(0) and all(initial(j) for j in range(1, n - 1))
            and not f[0] & (STOP | AMBIGUOUS) and not f[n - 1] & (STOP | AMBIGUOUS)
            and (known(f[0]) or known(f[n - 1]))):
        return True
    if (c in (CUE_VERB, CUE_PREP) and n >= 2 and capitalised
            and all(not x & (STOP | AMBIGUOUS) or initial(j) for j, x in enumerate(f))
            and (c == CUE_VERB or any(known(x) for x in f)) and run_is_plain(text, w, run)):
        # "Spoke with Wenjie Shangguan", "addressed to Venkatesh
        # Subramaniam": two capitalised words, none an everyday one.
        return True
    if c == CUE_PREP and n == 1:
        return clean(f[0]) and f[0] & FIRST != 0
    if c == CUE_PREP:
        # A lower-case unknown last word was checked to end the name.
        last_ok = f[n - 1] & (FIRST | LAST) != 0 or capitalised or f[n - 1] == 0
        return f[0] & FIRST != 0 and (clean(f[0]) or capitalised) and last_ok
    # "Hi Haruto", "Hola Abebe": any capitalised word not a stop word.
    if c == CUE_GREETING and (capitalised or known(f[0])):
        return True
    if c == CUE_LABEL and n == 1:
        return clean(f[0])
    if c == CUE_LABEL and (capitalised or any(clean(x) for x in f)):
        return True
    if c == CUE_VERB and n == 1:
        return clean(f[0]) and f[0] & FIRST != 0
    if c == CUE_VERB and any(clean(x) for x in f):
        return True
    # "DELACROIX Margaux": a surname in capitals, then a known first name.
    if (n >= 2 and w[run[0]].caps and (known(f[0]) or blen(text[w[run[0]].start:w[run[0]].end]) > 3)
            and not w[run[n - 1]].caps and clean(f[n - 1]) and f[n - 1] & FIRST):
        return True
    # "Approved by K. Zielińska".
    if c in (CUE_VERB, CUE_LABEL) and initial(0) and capitalised and n >= 2:
        return True
    if n < 2:
        return False
    # No cue: a first name then a last name, one of them unambiguous.
    first_ok = f[0] & FIRST != 0 or initial(0)
    last = f[n - 1]
    last_ok = last & LAST != 0
    if not all(known(f[j]) or initial(j) or f[j] & PARTICLE for j in range(1, n - 1)):
        return False
    start = sentence_start(text, w[run[0]].start)
    if first_ok and last_ok:
        # "Mark Brown": two everyday words are no name without a cue.
        return clean(f[0]) or clean(last) or (initial(0) and known(last))
    if clean(f[0]) and f[0] & FIRST and last == 0 and w[run[n - 1]].cap:
        # "Priya Raghunathan": a known first name, an unknown surname.
        return True
    if f[0] == 0 and not start and clean(last) and last & LAST and n == 2:
        # "Oluwaseun Adeyemi" mid-sentence: an unknown first name.
        return True
    return False


def not_people(text, w, i, last):
    """Whether the run is a company, a model or a place named after people."""
    low = lambda x: lower(text[x.start:x.end])  # noqa: E731
    if last + 1 < len(w):
        nxt = w[last + 1]
        gap = text[w[last].end:nxt.start]
        if gap in (" ", " & ", ", ", "-", " (") and low(nxt) in NOT_AFTER_SET:
            return True
        if gap in (" & ", "-"):
            # "Johnson & Johnson", "Black-Scholes" split by the tokenizer.
            return True
    end_word = low(w[last])
    if last > i and (end_word in ORG_WORDS
                     or (end_word in PLACE_WORDS and (
                         cue(text, w, i) == CUE_NONE
                         or (cue(text, w, i) in (CUE_PREP, CUE_VERB)
                             and (not w[i].flags & FIRST or w[i].flags & (STOP | AMBIGUOUS)))))):
        # "Destiny Park", "Liberty Plaza", "Northbridge Lending".
        return True
    word = text[w[last].start:w[last].end]
    tail = word.rsplit("-", 1)[1] if "-" in word else ""
    if "-" in word and tail[:1].islower() and len(tail) >= 6:
        # "Albert Heijn-klanten": a name inside a compound word (not a
        # Korean given name: "Seo-yeon", "Min-jun").
        return True
    if low(w[i]) in NOT_BEFORE_SET:
        # "San Diego", "Santa Clara", "Mount Vernon".
        return True
    if i > 0:
        gap = text[w[i - 1].end:w[i].start]
        if gap in (" ", ". ", "-", " & ") and (low(w[i - 1]) in NOT_BEFORE_SET or gap in (" & ", "-")):
            return True
    # "Black-Scholes" is one word of the text, "black scholes" in the list.
    joined = " ".join(l for l in (low(w[x]) for x in range(i, last + 1)) if l not in PARTICLE_SET).replace("-", " ")
    return any(joined == p or joined.startswith(p + " ") for p in NOT_PEOPLE)


# --- Tables pasted into text (table.rs) ------------------------------------

TABLE_COLUMNS = {}
for _kind, _names in (
    ("person", "name fullname firstname lastname surname forename givenname familyname middlename "
               "customername clientname contactname holder holdername accountholder cardholder "
               "cardholdername beneficiary beneficiaryname payee payeename applicant applicantname nom "
               "prénom prenom nomcomplet nomdefamille titulaire nombre apellido apellidos nombrecompleto "
               "titular nome sobrenome nomecompleto cognome nominativo vorname nachname kontoinhaber "
               "inhaber kunde kundenname voornaam achternaam naam"),
    ("phone", "phone phonenumber telephone tel mobile mobilephone cell cellphone telefon telefonnummer "
              "handy mobil mobilnummer téléphone telephone portable teléfono telefono móvil movil telefone "
              "telemóvel telemovel tlm whatsapp mobilenumber mobileno phoneno contactnumber celular cellulare telefoon"),
    ("dob", "dob dateofbirth birthdate birthday datenaissance datedenaissance geburtsdatum geburtstag "
            "fechanacimiento fechadenacimiento fnac datanascimento datadenascimento datadinascita "
            "geboortedatum"),
    ("address", "address mailingaddress streetaddress homeaddress billingaddress shippingaddress "
                "postaladdress adresse anschrift wohnadresse direccion dirección domicilio morada "
                "endereco endereço indirizzo adres"),
    ("ssn", "ssn socialsecurity socialsecuritynumber ssnnumber"),
    ("aba_routing", "routing routingnumber routingno aba abanumber abarouting rtn"),
    ("in_aadhaar", "aadhaar aadhar aadhaarno aadhaarnumber"),
    ("de_tax_id", "steuerid steueridentifikationsnummer idnr taxid"),
    ("br_cpf", "cpf"),
    ("ca_sin", "sin socialinsurancenumber nas"),
    ("bic", "bic swift swiftcode biccode bicswift swiftbic"),
    ("passport", "passport passportno passportnumber reisepass reisepassnummer passnummer passeport pasaporte passaporte"),
):
    for _name in _names.split():
        TABLE_COLUMNS.setdefault(_name, _kind)  # the first list that holds it wins
# Rust's `char::is_whitespace` (White_Space), for `str::trim`.
RUST_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
          "\u2028\u2029\u202f\u205f\u3000"


RULE = frozenset("-+=|: \t")  # the bytes of a rule line under a header
PHONE_FIELD = frozenset("0123456789+-/(). ")


def column_kind(header):
    """The kind of the values in a column, from its header: its letters and
    digits, in lower case."""
    return TABLE_COLUMNS.get("".join(c.lower() for c in header if c.isalnum()))


def fields(line, sep):
    """`split_fields`, without the empty fields outside a Markdown row's
    outer pipes (table.rs `fields`)."""
    out = split_fields(line, sep)
    if sep == "|":
        def blank(f):
            return not line[f[0]:f[1]].strip(RUST_WS)
        if line.lstrip(RUST_WS).startswith("|") and out and blank(out[0]):
            out.pop(0)
        if line.rstrip(RUST_WS).endswith("|") and len(out) > 1 and blank(out[-1]):
            out.pop()
    return out


def split_fields(line, sep):
    """The fields of a line split at `sep` as (start, end); a field in
    double quotes may hold the separator, the quotes are not part of it."""
    out, i, n = [], 0, len(line)
    while True:
        start = i
        while start < n and line[start] == " ":
            start += 1
        if start < n and line[start] == '"':
            opening = start + 1
            close = line.find('"', opening)
            if close < 0:
                close = n
            out.append((opening, close))
            nxt = line.find(sep, close)
            if nxt < 0:
                return out
            i = nxt + 1
        else:
            end = line.find(sep, i)
            if end < 0:
                end = n
            out.append((i, end))
            if end >= n:
                return out
            i = end + 1


def header_of(line):
    """The separator and the (column, kind) pairs of a header line, if it is
    one: two or more fields, none empty, over 40 bytes, over three words or
    with a `?` or `!`, one of them a named column."""
    sep = next((c for c in ";\t|," if c in line), None)
    if sep is None or '":' in line or '" :' in line:
        # No separator, or a line of JSON (`"first_name": "Petr",`).
        return None
    cells = fields(line, sep)
    def heading(h):
        # Short, and no sentence ("Name, address and phone are required.");
        # in `INSERT INTO t (a, b, c)` the first column starts after the `(`.
        h = h.rsplit("(", 1)[-1]
        return (bool(h.strip(RUST_WS)) and blen(h) <= 40 and len(h.split()) <= 3
                and not any(c in h for c in "?!"))
    if len(cells) < 2 or not all(heading(line[a:z]) for a, z in cells):
        return None
    columns = [(n, k) for n, (a, z) in enumerate(cells) if (k := column_kind(line[a:z]))]
    return (sep, columns) if columns else None


def unwrap_sql(cell):
    """A field without SQL's quotes, `;` and unmatched brackets (table.rs)."""
    v = cell.strip(RUST_WS)
    while True:
        before = len(v)
        v = v.strip("';")
        if v.startswith("(") and ")" not in v[1:]:
            v = v[1:]
        if v.endswith(")") and "(" not in v[:-1]:
            v = v[:-1]
        if len(v) == before:
            return v


def id_fits(kind, value):
    """Whether a field of an id column is that id (table.rs `id_fits`)."""
    if kind == "ssn":
        return ssn(value)
    if kind == "aba_routing":
        return len(value) == 9 and aba_routing(value)
    if kind == "passport":
        return passport_number(value)
    return {"in_aadhaar": aadhaar, "de_tax_id": de_tax_id, "br_cpf": br_cpf, "ca_sin": ca_sin, "bic": bic}[kind](value)


def find_table_cells(text):
    """Every value in a named column of a table in `text` as (start, end,
    kind): the rows under a header line while they have its number of
    fields (a rule line right under the header, as psql and Markdown draw,
    skipped), each field with a letter or digit, a phone column's with seven
    digits or more and nothing but digits and `+-/(). `."""
    out = []
    if "\n" not in text:
        return out
    lines, at = [], 0
    for line in text.split("\n"):
        lines.append((at, line[:-1] if line.endswith("\r") else line))
        at += len(line) + 1
    i = 0
    while i + 1 < len(lines):
        header = header_of(lines[i][1])
        if header is None:
            i += 1
            continue
        sep, columns = header
        width = len(fields(lines[i][1], sep))
        j = i + 1
        while j < len(lines):
            offset, row = lines[j]
            if j == i + 1 and row.strip(RUST_WS) and all(c in RULE for c in row):
                # The line under a header in psql or Markdown output.
                j += 1
                continue
            cells = fields(row, sep)
            if len(cells) != width:
                break
            for col, kind in columns:
                a, z = cells[col]
                field = row[a:z]
                # SQL `VALUES ('Bérénice', 'Carpentier', ...)`: quotes and
                # brackets are not part of the value.
                value = unwrap_sql(field)
                if kind == "phone":
                    # A phone column's field is a number: digits and the
                    # usual separators, seven digits or more.
                    fits = sum(c in DIGITS for c in value) >= 7 and all(c in PHONE_FIELD for c in value)
                elif kind in ("person", "dob", "address"):
                    fits = any(c.isalnum() for c in value)
                else:
                    fits = id_fits(kind, value)
                if fits and value:
                    start = offset + a + field.find(value)
                    out.append((start, start + len(value), kind))
            j += 1
        i = max(j, i + 1)
    return out


# --- Redaction (detect.rs `scan`, redact.rs, token.rs) ---------------------


def leftmost(forms, text):
    """The matches of a kind's forms as (start, end, form), left to right:
    at each place the first form that matches there, as Rust's multi-pattern
    search (and `re` with the forms as alternatives) finds them. The caller
    sends where the scan goes on (None: after the match)."""
    if len(forms) == 1:
        rx = forms[0]
        m = rx.search(text)
        while m:
            resume = yield m.start(), m.end(), 0
            pos = resume if resume is not None else m.end() if m.end() > m.start() else m.end() + 1
            m = rx.search(text, pos) if pos <= len(text) else None
        return
    pos, ahead = 0, [rx.search(text) for rx in forms]
    while True:
        best = None
        for form, m in enumerate(ahead):
            if m is not None and m.start() < pos:
                m = ahead[form] = forms[form].search(text, pos)
            if m is not None and (best is None or m.start() < ahead[best].start()):
                best = form
        if best is None:
            return
        m = ahead[best]
        resume = yield m.start(), m.end(), best
        pos = resume if resume is not None else m.end() if m.end() > m.start() else m.end() + 1


SPACES = "\u00a0\u202f\u2009\u2007\u2008"
ESCAPED = {"40": "@", "20": " ", "2b": "+", "2e": ".", "2d": "-", "5f": "_"}


def find(text):
    """`find_text` of the text as the detectors read it: no-break and thin
    spaces as spaces, the percent escapes of punctuation decoded; spans are
    the original's (normalize.rs)."""
    if not any(c in text for c in SPACES) and not re.search(r"%(?:40|20|2[bBeEdD]|5[fF])", text):
        return find_text(text)
    out, idx, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c in SPACES:
            out.append(" "); idx.append(i); i += 1
        elif c == "%" and text[i + 1:i + 3].lower() in ESCAPED and len(text[i + 1:i + 3]) == 2:
            out.append(ESCAPED[text[i + 1:i + 3].lower()]); idx.append(i); i += 3
        else:
            out.append(c); idx.append(i); i += 1
    idx.append(len(text))
    return [(idx[a], idx[z], k) for a, z, k in find_text("".join(out))]


def find_text(text):
    """Every finding in `text` as (start, end, kind), left to right: each
    kind's patterns in priority order, a match kept when its validator
    accepts it (or that of the kind's next form matching at the same place)
    and it overlaps neither an earlier one nor a token, nor starts inside a
    run of digits that failed as a card; the fields of a table's named
    columns outside the tokens; the addresses outside the tokens and those
    fields, which replace the findings they overlap; the fields, which do
    the same; then the names outside all of them and the tokens (detect.rs
    `scan`)."""
    tokens = [m.span() for m in TOKEN.finditer(text)]
    taken = list(tokens)  # tokens and the matches kept
    found, no_card = [], []
    for kind, forms in COMPILED:
        scan, resume = leftmost(forms, text), None
        while True:
            # Where the scan goes on, as in Rust's `scan_patterns`: after a
            # finding, else after the span it starts in.
            try:
                start, stop, form = scan.send(resume)
            except StopIteration:
                break
            resume = next((z for a, z in taken if a <= start < z), None)
            if resume is not None:
                continue
            sp = validated(kind, form, text, start, stop)
            for later in range(form + 1, len(forms)) if sp is None else ():
                # The kind's next form that matches here and validates.
                n = forms[later].match(text, start)
                if n and (sp := validated(kind, later, text, start, n.end())) is not None:
                    break
            if sp is None:
                if kind == "card":
                    # A run of digits that is no card: a number inside it is
                    # not PII either (one starting where it starts may be),
                    # except a card that starts at one of its later groups.
                    no_card.append((start, stop))
                    for i in range(start + 1, stop):
                        if not (text[i] in DIGITS and text[i - 1] not in DIGITS):
                            continue
                        n = forms[0].match(text, i)
                        sp = n and validated(kind, 0, text, i, n.end())
                        if sp:
                            taken.append(sp)
                            found.append((sp[0], sp[1], kind))
                            resume = max(stop, sp[1])
                            break
                elif kind == "email":
                    # No other address starts before its `@`.
                    at = text.find("@", start, stop)
                    resume = stop if at < 0 else at + 1
                else:
                    # A number nothing validates: none starts inside it;
                    # else the scan moves one character on.
                    resume = start + 1
                    while resume < len(text) and text[resume] in DIGITS and text[start] in DIGITS:
                        resume += 1
                continue
            end = sp[1]
            hidden = next((z for a, z in no_card if a < start < z), None)
            if all(end <= a or start >= z for a, z in taken) and hidden is None:
                taken.append((start, end))
                found.append((sp[0], sp[1], kind))
                resume = max(end, start + 1)
                if kind == "dob":
                    # The dates that continue a list after it.
                    for a, z in dob_list_after(text, end):
                        taken.append((a, z))
                        found.append((a, z, "dob"))
                        resume = z
            else:
                resume = hidden
    # A table's named columns come first: the column says what they are.
    cells = [c for c in find_table_cells(text) if not any(s < c[1] and c[0] < e for s, e in tokens)]
    addresses = [(a, z) for a, z in find_addresses(text, tokens)
                 if not any(a < c[1] and c[0] < z for c in cells)]
    if addresses:
        # An address takes the place of what the patterns found inside it (a
        # ZIP+4 code is no phone number).
        found = [f for f in found if not any(f[0] < z and a < f[1] for a, z in addresses)]
        found.extend((a, z, "address") for a, z in addresses)
    if cells:
        found = [f for f in found if not any(f[0] < c[1] and c[0] < f[1] for c in cells)]
        found.extend(cells)
    skip = sorted([(a, z) for a, z, _ in found] + tokens)
    found.extend((a, z, "person") for a, z in find_names(text, skip))
    found.sort()
    return found


def normalise(kind, value):
    if kind == "email":
        return ascii_lower(value)
    if kind in ("phone", "card", "ssn"):
        return "".join(c for c in value if c in DIGITS)
    if kind == "iban":
        return ascii_upper("".join(c for c in value if not c.isspace()))
    if kind == "ipv6":
        try:
            addr = ipaddress.IPv6Address(value)
        except ValueError:
            return ascii_lower(value)
        # Rust writes an IPv4-mapped address with its IPv4 part dotted.
        return f"::ffff:{addr.ipv4_mapped}" if addr.ipv4_mapped else str(addr)
    if kind == "person":
        return " ".join(value.split()).lower()
    if kind == "address":
        return " ".join(w for w in re.split(r"[\s,]+", value) if w).lower()
    return value


def token(key, kind, value):
    mac = hmac.new(key, kind.encode() + b"\0" + normalise(kind, value).encode(), hashlib.sha256)
    return f"<{kind}:{mac.hexdigest()[:16]}>"


def redact_once(key, text):
    found = find(text)
    if not found:
        return text, 0
    out, last = [], 0
    for a, z, kind in found:
        out.append(text[last:a])
        out.append(token(key, kind, text[a:z]))
        last = z
    out.append(text[last:])
    return "".join(out), len(found)


def redact_passes(key, text):
    """Redaction passes until nothing more is found (at most 8)."""
    total = 0
    for _ in range(8):
        text, n = redact_once(key, text)
        total += n
        if n == 0:
            break
    return text, total


def unescape_json(text):
    """`text` with its JSON string escapes resolved (a lone surrogate
    becomes U+FFFD); anything that is not an escape is kept."""
    def hex4(s):
        h = s[:4]
        return int(h, 16) if len(h) == 4 and all(c in string.hexdigits for c in h) else None

    out, rest = [], text
    simple = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
    while True:
        i = rest.find("\\")
        if i < 0:
            break
        out.append(rest[:i])
        after = rest[i + 1:]
        decoded, used = None, 0
        if after[:1] == "u":
            cp = hex4(after[1:])
            if cp is not None and 0xD800 <= cp <= 0xDBFF:
                lo = hex4(after[7:]) if after[5:7] == "\\u" else None
                if lo is not None and 0xDC00 <= lo <= 0xDFFF:
                    decoded, used = chr(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)), 11
                else:
                    decoded, used = "\ufffd", 5
            elif cp is not None:
                decoded, used = ("\ufffd" if 0xDC00 <= cp <= 0xDFFF else chr(cp)), 5
        elif after[:1] in simple:
            decoded, used = simple[after[:1]], 1
        if decoded is None:
            out.append("\\")
            rest = after
        else:
            out.append(decoded)
            rest = after[used:]
    out.append(rest)
    return "".join(out)


def redact(key, text):
    """`redact_text`: the passes, then, for text with backslashes, the same
    on its JSON escapes resolved (up to three levels) if that finds more."""
    redacted, _ = redact_passes(key, text)
    if "\\" not in redacted:
        return redacted
    resolved = redacted
    for _ in range(3):
        if "\\" not in resolved:
            break
        resolved = unescape_json(resolved)
        cleaned, n = redact_passes(key, resolved)
        if n:
            return cleaned
    return redacted


def main():
    key = bytes.fromhex(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        lines = f.read().split("\n")
    size = sum(len(l.encode()) for l in lines)
    redacted = [redact(key, l) for l in lines]
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        f.write("\n".join(redacted))
    min_seconds = float(sys.argv[4])
    passes, start = 0, time.perf_counter()
    while True:
        for l in lines:
            redact(key, l)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    print(json.dumps({"bytes_per_second": size * passes / elapsed, "passes": passes}))


if __name__ == "__main__":
    main()
