"""Parsing and validation of Swedish personnummer and samordningsnummer on referrals."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime

__all__ = [
    "TEST_PERSONNUMMER",
    "Identity",
    "PersonnummerError",
    "age_at",
    "luhn_ok",
    "parse_personnummer",
]

# Samordningsnummer encode the birth day plus 60 (Skatteverket, SKV 707).
_SAMORDNING_OFFSET = 60
# A 12-digit number below this year is a typo, not a living patient; it also keeps date() in range.
_EARLIEST_YEAR = 1800

# re.ASCII: str.isdigit()/\d would otherwise accept e.g. Arabic-Indic or superscript digits,
# which int() partly accepts and would smuggle non-canonical text into Identity.number.
_SHAPE = re.compile(r"(?P<date>[0-9]{6}|[0-9]{8})(?P<sep>[-+]?)(?P<tail>[0-9]{4})", re.ASCII)
_ALLOWED_CHARS = re.compile(r"[0-9+-]*", re.ASCII)


class PersonnummerError(ValueError):
    """The text is not a usable personnummer; str(error) is a Swedish message for staff."""


@dataclass(frozen=True, slots=True)
class Identity:
    number: str  # 12 digits canonical, e.g. "191212121212"
    kind: str  # "personnummer" or "samordningsnummer"
    birth_date: date
    sex: str  # "F" or "M" (from the second-to-last digit: odd = M)

    @property
    def formatted(self) -> str:
        # Always the 12-digit form: it carries the century, so it never needs "+" and
        # parses back to the same Identity whatever the reference date.
        return f"{self.number[:8]}-{self.number[8:]}"


def luhn_ok(digits10: str) -> bool:
    """True if the ten digits end in a correct Luhn check digit."""
    if len(digits10) != 10 or not all(ch in "0123456789" for ch in digits10):
        return False
    total = 0
    for index, ch in enumerate(digits10):
        # Skatteverket weights 2,1,2,1,... from the left over the ten-digit form.
        product = int(ch) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return total % 10 == 0


def age_at(birth_date: date, on: date) -> int:
    """Whole years completed by someone born on birth_date, as of the date on."""
    birth_date, on = _as_date(birth_date), _as_date(on)
    if on < birth_date:
        raise ValueError(f"on ({on.isoformat()}) is before birth_date ({birth_date.isoformat()})")
    birthday = (birth_date.month, birth_date.day)
    if birthday == (2, 29) and not calendar.isleap(on.year):
        # Swedish convention (as specified for this project): in a common year a leap-day
        # child has only completed the full year once 28 February is over, so the new age
        # starts on 1 March, never on 28 February. Age limits (e.g. 18, 100 for "+") then
        # switch on the same day for everyone born on 29 February.
        birthday = (3, 1)
    return on.year - birth_date.year - ((on.month, on.day) < birthday)


def parse_personnummer(text: str, *, reference_date: date) -> Identity:
    """Parse a personnummer or samordningsnummer as of reference_date (the referral date)."""
    reference_date = _as_date(reference_date)
    if not isinstance(text, str):
        raise PersonnummerError("Personnumret måste anges som text.")
    cleaned = text.strip()
    if not cleaned:
        raise PersonnummerError("Personnummer saknas.")

    match = _SHAPE.fullmatch(cleaned)
    if match is None:
        raise PersonnummerError(_shape_problem(cleaned))
    date_part, separator, tail = match.group("date", "sep", "tail")
    last10 = (date_part + tail)[-10:]

    # Before the Luhn check: organisation numbers are Luhn-valid too, and "wrong check
    # digit" would send the secretary looking for a typo that is not there.
    if last10[2] >= "2":
        raise PersonnummerError(
            "Detta ser ut som ett organisationsnummer, inte ett personnummer "
            f"(månadssiffrorna är {last10[2:4]}). Ange patientens personnummer."
        )
    if not luhn_ok(last10):
        raise PersonnummerError(
            "Kontrollsiffran stämmer inte – kontrollera att personnumret är rätt inskrivet."
        )

    month, day_digits = int(last10[2:4]), int(last10[4:6])
    if not 1 <= month <= 12:
        raise PersonnummerError(f"Månadssiffrorna {last10[2:4]} är ingen giltig månad.")
    if 1 <= day_digits <= 31:
        kind, day = "personnummer", day_digits
    elif _SAMORDNING_OFFSET + 1 <= day_digits <= _SAMORDNING_OFFSET + 31:
        kind, day = "samordningsnummer", day_digits - _SAMORDNING_OFFSET
    else:
        raise PersonnummerError(
            f"Dagsiffrorna {last10[4:6]} är ogiltiga: 01–31 för personnummer, "
            "61–91 för samordningsnummer."
        )

    if len(date_part) == 8:
        year = int(date_part[:4])
    else:
        year = _year_from_short_form(int(last10[:2]), month, day, separator, reference_date)
    if year < _EARLIEST_YEAR:
        raise PersonnummerError(f"Födelseåret {year} är inte rimligt.")
    try:
        birth_date = date(year, month, day)
    except ValueError:
        raise PersonnummerError(
            f"Födelsedatumet {year:04d}-{month:02d}-{day:02d} finns inte i kalendern."
        ) from None

    # Skatteverket never issues birth number 000; it is a typing error or placeholder.
    if last10[6:9] == "000":
        raise PersonnummerError(
            "Födelsenumret 000 (de tre siffrorna efter datumet) förekommer inte i ett "
            "giltigt personnummer."
        )
    if birth_date > reference_date:
        raise PersonnummerError(
            f"Födelsedatumet {birth_date.isoformat()} ligger efter remissdatumet "
            f"{reference_date.isoformat()}."
        )
    if len(date_part) == 8 and separator == "+":
        age = age_at(birth_date, reference_date)
        if age < 100:
            raise PersonnummerError(
                "Plustecknet betyder att personen har fyllt 100 år, men enligt sekelsiffrorna "
                f"är personen {age} år på remissdatumet {reference_date.isoformat()}."
            )

    number = f"{year:04d}{last10[2:]}"
    sex = "M" if int(number[10]) % 2 else "F"
    return Identity(number=number, kind=kind, birth_date=birth_date, sex=sex)


def _year_from_short_form(yy: int, month: int, day: int, separator: str, reference: date) -> int:
    # The most recent year ending in yy whose birthday (month, day) is not after the referral
    # date. Tuples, not date(): 29 February must be placed in a century before it can be
    # checked against that century's calendar (e.g. "000229" is valid only in 2000, not 1900).
    year = reference.year - (reference.year - yy) % 100
    if (year, month, day) > (reference.year, reference.month, reference.day):
        year -= 100
    if separator == "+":
        # "+" is written from the 100th birthday on, so it always means one century earlier.
        year -= 100
    return year


def _shape_problem(cleaned: str) -> str:
    if _ALLOWED_CHARS.fullmatch(cleaned) is None:
        return (
            "Personnumret får bara innehålla siffror, med bindestreck (-) eller plustecken (+) "
            "före de fyra sista siffrorna."
        )
    digit_count = sum(ch.isdigit() for ch in cleaned)
    if digit_count not in (10, 12):
        return f"Personnumret ska ha 10 eller 12 siffror, inte {digit_count}."
    return "Bindestreck eller plustecken får bara stå en gång, före de fyra sista siffrorna."


def _as_date(value: date) -> date:
    # datetime is a date subclass but cannot be compared with a plain date; callers may
    # hand us a referral timestamp.
    return value.date() if isinstance(value, datetime) else value


# Fictitious identities for demos, fixtures and tests; all valid at any date from 2025 on.
#
# Personnummer: Skatteverket's published test personnummer (open data set "Testpersonnummer",
# skatteverket.entryscape.net rowstore dataset b4de7df7-63c0-4e7e-bb59-1f156a591763, listed on
# dataportal.se). Copied from the verbatim dump of that data set in the GitHub repository
# Gyran/testpersonnummer (lib/index.js, generated from Skatteverket's API), not retyped from
# memory. Chosen to spread births 1930-2020 (ages 5-95 in 2025), both sexes, and to include
# leap-day births (1976, 1988, 2000, 2008, 2020-02-29).
#
# Samordningsnummer: 197010632391 is the worked example Skatteverket itself publishes
# (SKV 707 / SKVM 2010:3: man born 1970-10-03, individnummer 239). Skatteverket publishes no
# test samordningsnummer list that we could find, so 195506902385 and 200705612398 are
# constructed: the test personnummer 195506302388 and 200705012391 with 60 added to the day
# and the check digit recomputed. They are not guaranteed never to be issued to a real person.
TEST_PERSONNUMMER: tuple[str, ...] = (
    # 1930s
    "193001016595",
    "193002012387",
    "193201059247",
    "193303129096",
    "193501259166",
    "193512172382",
    "193603119045",
    "193707219139",
    "193812012395",
    "193911152381",
    # 1940s
    "194001042383",
    "194101012393",
    "194208272395",
    "194304302385",
    "194401012390",
    "194502202395",
    "194602112395",
    "194710162381",
    "194805132380",
    "194912232594",
    # 1950s
    "195011012365",
    "195107312323",
    "195205162331",
    "195303282387",
    "195404132382",
    "195506302388",
    "195607222394",
    "195705172590",
    "195808052384",
    "195909122821",
    # 1960s
    "196009172336",
    "196107162791",
    "196210012842",
    "196301052392",
    "196408233234",
    "196408312384",
    "196501022773",
    "196612312386",
    "196612312394",
    "196810292398",
    "196909092394",
    # 1970s
    "197101152390",
    "197207172391",
    "197408302391",
    "197510012383",
    "197601012391",
    "197602292380",
    "197602292398",
    "197802012398",
    "197912242380",
    # 1980s
    "198208012396",
    "198305012398",
    "198612242381",
    "198707012392",
    "198802292386",
    "198802292394",
    # 1990s
    "199308052399",
    "199401012381",
    "199501012380",
    # 2000s
    "200001012384",
    "200002292381",
    "200101012391",
    "200705012391",
    "200802292383",
    # 2010s
    "201212242380",
    "201307012383",
    "201404012393",
    "201512312396",
    "201701012393",
    "201801012392",
    "201906152382",
    "201912312392",
    # 2020
    "202001012398",
    "202002292387",
    "202005312380",
    # Samordningsnummer (see above)
    "197010632391",
    "195506902385",
    "200705612398",
)
