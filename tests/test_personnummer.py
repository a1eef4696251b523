"""Tests for triage.personnummer (pure Python; run with -p no:django)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.personnummer import (
    TEST_PERSONNUMMER,
    Identity,
    PersonnummerError,
    age_at,
    luhn_ok,
    parse_personnummer,
)

REF = date(2025, 6, 1)
# database=None: keep Hypothesis from writing example files into the shared checkout.
FUZZ = settings(max_examples=400, database=None, deadline=None)


def check_digit(nine: str) -> str:
    """Independent Luhn implementation, so tests do not trust the module's own luhn_ok."""
    total = 0
    for index, ch in enumerate(nine):
        value = int(ch) * (2 if index % 2 == 0 else 1)
        total += sum(divmod(value, 10))
    return str((10 - total % 10) % 10)


def pnr(date_digits: str, birth_number: str, sep: str = "") -> str:
    """Build a number with a correct check digit: date_digits is YYMMDD or YYYYMMDD."""
    short = date_digits[-6:] + birth_number
    return f"{date_digits}{sep}{birth_number}{check_digit(short)}"


def ident(number: str, kind: str, born: date, sex: str) -> Identity:
    return Identity(number=number, kind=kind, birth_date=born, sex=sex)


TOLVAN = ident("191212121212", "personnummer", date(1912, 12, 12), "M")
TOLVAN_2012 = ident("201212121212", "personnummer", date(2012, 12, 12), "M")


# --- accepted forms ---------------------------------------------------------------------------

ACCEPTED = [
    pytest.param("191212121212", TOLVAN, id="12-digits"),
    pytest.param("19121212-1212", TOLVAN, id="12-digits-hyphen"),
    pytest.param("19121212+1212", TOLVAN, id="12-digits-plus-over-100"),
    pytest.param("121212-1212", TOLVAN_2012, id="10-digits-hyphen"),
    pytest.param("121212+1212", TOLVAN, id="10-digits-plus"),
    pytest.param("1212121212", TOLVAN_2012, id="10-digits-no-separator"),
    pytest.param("  19121212-1212 ", TOLVAN, id="surrounding-spaces"),
    pytest.param("\t121212+1212\r\n", TOLVAN, id="surrounding-tab-newline"),
    pytest.param("\u00a0191212121212\u2003", TOLVAN, id="surrounding-unicode-space"),
    pytest.param(
        "200002292381",
        ident("200002292381", "personnummer", date(2000, 2, 29), "F"),
        id="29-feb-leap-year-2000",
    ),
    pytest.param(
        pnr("20040229", "239", "-"),
        ident(pnr("20040229", "239"), "personnummer", date(2004, 2, 29), "M"),
        id="29-feb-leap-year-2004",
    ),
    pytest.param(
        "701063-2391",
        ident("197010632391", "samordningsnummer", date(1970, 10, 3), "M"),
        id="samordningsnummer-skatteverket-example",
    ),
    pytest.param(
        pnr("19850161", "238", "-"),
        ident(pnr("19850161", "238"), "samordningsnummer", date(1985, 1, 1), "F"),
        id="samordningsnummer-day-61",
    ),
    pytest.param(
        pnr("850191", "238"),
        ident(pnr("19850191", "238"), "samordningsnummer", date(1985, 1, 31), "F"),
        id="samordningsnummer-day-91",
    ),
    pytest.param(
        pnr("20040289", "248", "-"),
        ident(pnr("20040289", "248"), "samordningsnummer", date(2004, 2, 29), "F"),
        id="samordningsnummer-29-feb-leap-year",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_forms(text: str, expected: Identity) -> None:
    assert parse_personnummer(text, reference_date=REF) == expected


def test_formatted_is_12_digits_with_hyphen() -> None:
    assert TOLVAN.formatted == "19121212-1212"
    assert parse_personnummer("701063-2391", reference_date=REF).formatted == "19701063-2391"


def test_identity_is_frozen_and_slotted() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TOLVAN.number = "x"  # type: ignore[misc]
    assert not hasattr(TOLVAN, "__dict__")


def test_datetime_reference_date_is_accepted() -> None:
    when = datetime(2025, 6, 1, 14, 30)  # a referral timestamp; only its date counts
    assert parse_personnummer("121212-1212", reference_date=when) == TOLVAN_2012


# --- rejections -------------------------------------------------------------------------------

REJECTED = [
    pytest.param("", REF, "saknas", id="empty"),
    pytest.param("   \n", REF, "saknas", id="only-whitespace"),
    pytest.param("abc", REF, "bara innehålla siffror", id="letters"),
    pytest.param("19121212-12A2", REF, "bara innehålla siffror", id="letter-inside"),
    pytest.param("19121212 1212", REF, "bara innehålla siffror", id="inner-space"),
    pytest.param("١٢١٢١٢-١٢١٢", REF, "bara innehålla siffror", id="arabic-indic-digits"),
    pytest.param("１２１２１２-１２１２", REF, "bara innehålla siffror", id="fullwidth-digits"),
    pytest.param("19121212121", REF, "10 eller 12 siffror", id="11-digits"),
    pytest.param("121212-121", REF, "10 eller 12 siffror", id="9-digits"),
    pytest.param("1912121212120", REF, "10 eller 12 siffror", id="13-digits"),
    pytest.param("-", REF, "10 eller 12 siffror", id="only-separator"),
    pytest.param("1912-12121212", REF, "före de fyra sista", id="misplaced-separator"),
    pytest.param("121212--1212", REF, "före de fyra sista", id="double-separator"),
    pytest.param("121212-+1212", REF, "före de fyra sista", id="hyphen-and-plus"),
    pytest.param("19121212-1213", REF, "Kontrollsiffran stämmer inte", id="wrong-luhn"),
    pytest.param("1212121213", REF, "Kontrollsiffran stämmer inte", id="wrong-luhn-10"),
    pytest.param("556677-8899", REF, "organisationsnummer", id="organisation-number"),
    pytest.param("5566778899", REF, "organisationsnummer", id="organisation-number-bare"),
    pytest.param("16556677-8899", REF, "organisationsnummer", id="organisation-number-12"),
    pytest.param(pnr("802002", "123", "-"), REF, "organisationsnummer", id="month-digits-20"),
    pytest.param(pnr("19001301", "238"), REF, "ingen giltig månad", id="month-13"),
    pytest.param(pnr("19000001", "238"), REF, "ingen giltig månad", id="month-00"),
    pytest.param(pnr("19850100", "238"), REF, "Dagsiffrorna 00", id="day-00"),
    pytest.param(pnr("19850132", "238"), REF, "Dagsiffrorna 32", id="day-32"),
    pytest.param(pnr("19850160", "238"), REF, "Dagsiffrorna 60", id="day-60"),
    pytest.param(pnr("19850192", "238"), REF, "Dagsiffrorna 92", id="samordningsnummer-day-92"),
    pytest.param(pnr("20000230", "238", "-"), REF, "finns inte", id="30-feb"),
    pytest.param(pnr("20010229", "238"), REF, "2001-02-29 finns inte", id="29-feb-non-leap"),
    pytest.param(pnr("19000229", "238"), REF, "1900-02-29 finns inte", id="29-feb-1900"),
    pytest.param(pnr("20000431", "238"), REF, "finns inte", id="31-april"),
    pytest.param(pnr("20010289", "238"), REF, "finns inte", id="samordningsnummer-29-feb-2001"),
    pytest.param(pnr("19850431", "238"), REF, "finns inte", id="samordningsnummer-day-91-april"),
    pytest.param(pnr("19121212", "000", "-"), REF, "Födelsenumret 000", id="birth-number-000"),
    pytest.param(pnr("121212", "000", "+"), REF, "Födelsenumret 000", id="birth-number-000-10"),
    pytest.param(
        "202401012394", date(2023, 12, 31), "ligger efter remissdatumet", id="future-birth-date"
    ),
    pytest.param(
        pnr("20250602", "238", "-"), REF, "ligger efter remissdatumet", id="born-tomorrow"
    ),
    pytest.param(pnr("21000101", "238"), REF, "ligger efter remissdatumet", id="century-21"),
    pytest.param("20000229+2381", REF, "Plustecknet", id="12-digit-plus-contradicts-century"),
    pytest.param(pnr("17991231", "238"), REF, "inte rimligt", id="year-1799"),
    pytest.param(
        pnr("000101", "238", "+"), date(1899, 12, 31), "inte rimligt", id="plus-before-1800"
    ),
]


@pytest.mark.parametrize(("text", "reference", "message"), REJECTED)
def test_rejections(text: str, reference: date, message: str) -> None:
    with pytest.raises(PersonnummerError) as excinfo:
        parse_personnummer(text, reference_date=reference)
    assert message in str(excinfo.value)


def test_error_is_a_value_error() -> None:
    assert issubclass(PersonnummerError, ValueError)


def test_non_str_input_raises_personnummer_error() -> None:
    with pytest.raises(PersonnummerError):
        parse_personnummer(191212121212, reference_date=REF)  # type: ignore[arg-type]


def test_organisation_number_is_luhn_valid_so_the_message_is_not_about_the_check_digit() -> None:
    assert luhn_ok("5566778899")


# --- century from the separator ---------------------------------------------------------------

CENTURIES = [
    pytest.param("121212-1212", REF, date(2012, 12, 12), id="hyphen-this-century"),
    pytest.param("121212+1212", REF, date(1912, 12, 12), id="plus-previous-century"),
    pytest.param(pnr("250601", "238", "-"), REF, date(2025, 6, 1), id="hyphen-born-on-ref-date"),
    pytest.param(pnr("250601", "238", "+"), REF, date(1925, 6, 1), id="plus-turns-100-on-ref-date"),
    pytest.param(pnr("250602", "238", "-"), REF, date(1925, 6, 2), id="hyphen-99-turns-100-next"),
    pytest.param(pnr("250602", "238", "+"), REF, date(1825, 6, 2), id="plus-day-after-ref"),
    pytest.param(
        pnr("19250601", "238", "+"), REF, date(1925, 6, 1), id="12-digit-plus-exactly-100"
    ),
    pytest.param(pnr("991231", "238", "-"), date(2000, 1, 1), date(1999, 12, 31), id="y2k-back"),
    pytest.param(pnr("000101", "238", "-"), date(1999, 12, 31), date(1900, 1, 1), id="y2k-fwd"),
    pytest.param("000229-2381", REF, date(2000, 2, 29), id="leap-day-2000"),
    pytest.param(
        pnr("000229", "238", "-"), date(2100, 2, 28), date(2000, 2, 29), id="leap-day-99-years"
    ),
    pytest.param(
        pnr("000229", "238", "+"), date(2100, 3, 1), date(2000, 2, 29), id="leap-day-turns-100"
    ),
]


@pytest.mark.parametrize(("text", "reference", "born"), CENTURIES)
def test_century_from_separator(text: str, reference: date, born: date) -> None:
    assert parse_personnummer(text, reference_date=reference).birth_date == born


def test_plus_person_is_100_or_older() -> None:
    identity = parse_personnummer(pnr("250601", "238", "+"), reference_date=REF)
    assert age_at(identity.birth_date, REF) == 100


def test_12_digit_plus_one_day_before_100th_birthday_is_rejected() -> None:
    with pytest.raises(PersonnummerError, match="Plustecknet"):
        parse_personnummer(pnr("19250601", "238", "+"), reference_date=date(2025, 5, 31))


def test_plus_on_leap_day_1900_does_not_exist() -> None:
    # "+" pushes 2000-02-29 to 1900, which is not a leap year.
    with pytest.raises(PersonnummerError, match="1900-02-29 finns inte"):
        parse_personnummer("000229+2381", reference_date=REF)


# --- age_at -----------------------------------------------------------------------------------

AGES = [
    pytest.param(date(2000, 5, 10), date(2025, 5, 9), 24, id="day-before-birthday"),
    pytest.param(date(2000, 5, 10), date(2025, 5, 10), 25, id="on-birthday"),
    pytest.param(date(2000, 5, 10), date(2025, 5, 11), 25, id="day-after-birthday"),
    pytest.param(date(2000, 5, 10), date(2000, 5, 10), 0, id="born-today"),
    pytest.param(date(1999, 12, 31), date(2000, 1, 1), 0, id="across-new-year"),
    pytest.param(date(2000, 2, 29), date(2025, 2, 28), 24, id="leap-born-28-feb-common-year"),
    pytest.param(date(2000, 2, 29), date(2025, 3, 1), 25, id="leap-born-1-mar-common-year"),
    pytest.param(date(2000, 2, 29), date(2024, 2, 28), 23, id="leap-born-28-feb-leap-year"),
    pytest.param(date(2000, 2, 29), date(2024, 2, 29), 24, id="leap-born-29-feb-leap-year"),
    pytest.param(date(2000, 2, 29), date(2100, 2, 28), 99, id="leap-born-2100-is-common"),
    pytest.param(date(2000, 2, 29), date(2100, 3, 1), 100, id="leap-born-100-on-1-mar"),
    pytest.param(date(2000, 2, 28), date(2025, 2, 28), 25, id="born-28-feb"),
    pytest.param(date(2000, 3, 1), date(2025, 2, 28), 24, id="born-1-mar-day-before"),
]


@pytest.mark.parametrize(("born", "on", "expected"), AGES)
def test_age_at(born: date, on: date, expected: int) -> None:
    assert age_at(born, on) == expected


def test_age_at_rejects_date_before_birth() -> None:
    with pytest.raises(ValueError, match="before"):
        age_at(date(2000, 5, 10), date(2000, 5, 9))


# --- luhn_ok ----------------------------------------------------------------------------------

LUHN = [
    pytest.param("1212121212", True, id="tolvan"),
    pytest.param("7010632391", True, id="samordningsnummer"),
    pytest.param("1212121213", False, id="off-by-one"),
    pytest.param("2121212121", False, id="transposed"),
    pytest.param("0000000000", True, id="all-zero"),
    pytest.param("121212121", False, id="nine-digits"),
    pytest.param("12121212120", False, id="eleven-digits"),
    pytest.param("121212-121", False, id="hyphen"),
    pytest.param("١٢١٢١٢١٢١٢", False, id="non-ascii-digits"),
    pytest.param("", False, id="empty"),
]


@pytest.mark.parametrize(("digits", "expected"), LUHN)
def test_luhn_ok(digits: str, expected: bool) -> None:
    assert luhn_ok(digits) is expected


# --- TEST_PERSONNUMMER ------------------------------------------------------------------------


def test_test_numbers_are_many_unique_and_12_digits() -> None:
    assert len(TEST_PERSONNUMMER) >= 60
    assert len(set(TEST_PERSONNUMMER)) == len(TEST_PERSONNUMMER)
    assert all(len(n) == 12 and n.isascii() and n.isdigit() for n in TEST_PERSONNUMMER)


@pytest.mark.parametrize("number", TEST_PERSONNUMMER)
def test_test_number_is_luhn_valid_and_parses(number: str) -> None:
    assert check_digit(number[2:11]) == number[11]
    identity = parse_personnummer(number, reference_date=REF)
    assert identity.number == number
    assert parse_personnummer(identity.formatted, reference_date=REF) == identity


def test_test_numbers_spread_over_ages_sexes_and_kinds() -> None:
    identities = [parse_personnummer(n, reference_date=REF) for n in TEST_PERSONNUMMER]
    ages = sorted(age_at(i.birth_date, REF) for i in identities)
    assert ages[0] == 5
    assert ages[-1] == 95
    # Every decade of age from 0-9 to 90-99 is represented.
    assert {age // 10 for age in ages} == set(range(10))
    sexes = [i.sex for i in identities]
    assert sexes.count("F") >= 25
    assert sexes.count("M") >= 25
    assert sum(i.kind == "samordningsnummer" for i in identities) >= 3


# --- property-based ---------------------------------------------------------------------------

SHAPED_TEXT = st.from_regex(r"\A\s?[0-9]{5,9}[-+]{0,2}[0-9]{3,5}\s?\Z")
DIGITISH_TEXT = st.text(alphabet="0123456789+- \t\n", max_size=16)


def assert_parse_is_total(text: str, reference: date) -> None:
    try:
        identity = parse_personnummer(text, reference_date=reference)
    except PersonnummerError as error:
        assert str(error)
        return
    assert len(identity.number) == 12
    assert identity.number.isascii()
    assert identity.number.isdigit()
    assert luhn_ok(identity.number[2:])
    assert identity.kind in {"personnummer", "samordningsnummer"}
    assert identity.sex in {"F", "M"}
    assert identity.birth_date <= reference


@FUZZ
@given(st.text(), st.dates())
def test_fuzz_any_text_gives_identity_or_personnummer_error(text: str, reference: date) -> None:
    assert_parse_is_total(text, reference)


@FUZZ
@given(st.one_of(SHAPED_TEXT, DIGITISH_TEXT), st.dates())
def test_fuzz_number_like_text(text: str, reference: date) -> None:
    assert_parse_is_total(text, reference)


@st.composite
def identities_with_reference(draw: st.DrawFn) -> tuple[str, date, date]:
    """A valid 12-digit number, and a reference date 0-199 years after the birth date."""
    born = draw(st.dates(min_value=date(1800, 1, 1), max_value=date(2199, 12, 31)))
    birth_number = f"{draw(st.integers(min_value=1, max_value=999)):03d}"
    samordning = draw(st.booleans())
    day = born.day + (60 if samordning else 0)
    number = pnr(f"{born:%Y%m}{day:02d}", birth_number)
    reference = born + timedelta(days=draw(st.integers(min_value=0, max_value=199 * 365)))
    return number, born, reference


@FUZZ
@given(identities_with_reference())
def test_round_trip_through_formatted_and_short_form(case: tuple[str, date, date]) -> None:
    number, born, reference = case
    identity = parse_personnummer(number, reference_date=reference)
    assert identity.birth_date == born
    assert identity.sex == ("M" if int(number[10]) % 2 else "F")
    assert parse_personnummer(identity.formatted, reference_date=reference) == identity
    # The 10-digit form written the Skatteverket way ("+" from the 100th birthday) is unambiguous.
    separator = "+" if age_at(born, reference) >= 100 else "-"
    short = f"{number[2:8]}{separator}{number[8:]}"
    assert parse_personnummer(short, reference_date=reference) == identity
