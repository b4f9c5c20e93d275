"""The batch CSV is validated whole, hostile input included; report cells cannot become formulas."""

from __future__ import annotations

import codecs
import csv
import io

import pytest

from mailferry.domain.errors import ConfigError
from mailferry.service.csvimport import MAX_BYTES, MAX_ROWS, CsvRules, parse_batch_csv
from mailferry.service.reports import neutralise, render_csv

HEADER = "EmailAddress,UserName,Password,TargetPassword\r\n"


def problems(data: bytes, rules: CsvRules | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_batch_csv(data, rules)
    return info.value.problems


def test_exchange_format_as_is():
    data = b"EmailAddress,UserName,Password\r\nann@new.example,ann,s3cret\r\n"
    rows = parse_batch_csv(data, CsvRules(target_password_required=False))
    assert len(rows) == 1
    row = rows[0]
    assert (row.line, row.email, row.source_user, row.target_user) == (
        2,
        "ann@new.example",
        "ann",
        "ann@new.example",
    )
    assert row.source_password == "s3cret"
    assert "s3cret" not in repr(row)


def test_header_names_are_case_insensitive_and_columns_in_any_order():
    data = (
        b"password,TARGETUSERNAME,emailaddress,UserName,targetpassword,IncludeFolders,excludefolders\n"
        b"pw,bob.new,bob@new.example,bob,tpw,^INBOX$;^Sent,Junk\n"
    )
    (row,) = parse_batch_csv(data)
    assert row.target_user == "bob.new"
    assert row.target_password == "tpw"
    assert row.include == ("^INBOX$", "^Sent")
    assert row.exclude == ("Junk",)


def test_utf8_bom_is_tolerated():
    data = codecs.BOM_UTF8 + (HEADER + "zoë@new.example,zoë,pw,tpw\r\n").encode()
    (row,) = parse_batch_csv(data)
    assert row.email == "zoë@new.example"


def test_utf16_with_bom_is_read():
    data = (HEADER + "ann@new.example,ann,pw,tpw\r\n").encode("utf-16")
    (row,) = parse_batch_csv(data)
    assert row.source_user == "ann"


def test_wrong_encoding_names_the_line():
    data = (
        HEADER.encode()
        + b"ann@new.example,ann,pw,tpw\r\n"
        + "zoë@x.example,z,p,t\r\n".encode("latin-1")
    )
    (problem,) = problems(data)
    assert problem.startswith("line 3: not valid UTF-8")


def test_nul_bytes_are_refused():
    data = HEADER.encode() + b"ann@new.example,ann,p\x00w,tpw\r\n"
    assert problems(data)[0].startswith("line 2: contains a NUL")


def test_every_problem_is_reported_with_its_line():
    data = (
        HEADER + "ann@new.example,ann,pw,tpw\r\n"
        "not-an-address,bob,pw,tpw\r\n"
        "\r\n"
        "ANN@new.example,ann2,pw,tpw\r\n"
        "cy@new.example,,pw,tpw\r\n"
        "dee@new.example,dee,pw\r\n"
        "eve@new.example,eve,,tpw\r\n"
    ).encode()
    found = problems(data)
    assert found == [
        "line 3: EmailAddress 'not-an-address' is not a valid address",
        "line 5: duplicate target 'ANN@new.example' (first on line 2)",
        "line 6: UserName is empty",
        "line 7: 3 fields, the header has 4",
        "line 8: Password is empty (and the source endpoint has no admin login)",
    ]


def test_missing_and_unknown_columns():
    found = problems(b"Email,UserName\r\nann@new.example,ann\r\n")
    assert "line 1: unknown column 'Email'" in found
    assert "line 1: missing column EmailAddress" in found
    assert "line 1: missing column Password" in found


def test_passwords_not_required_with_admin_logins():
    data = b"EmailAddress,UserName,Password\nann@new.example,ann,\n"
    rules = CsvRules(source_password_required=False, target_password_required=False)
    (row,) = parse_batch_csv(data, rules)
    assert row.source_password == ""
    assert "TargetPassword is empty" in problems(data, CsvRules(source_password_required=False))[0]


def test_line_numbers_count_multiline_quoted_fields():
    data = (HEADER + 'ann@new.example,ann,"pass\r\nword",tpw\r\nbad,bob,pw,tpw\r\n').encode()
    assert problems(data) == ["line 4: EmailAddress 'bad' is not a valid address"]


def test_bad_folder_regex_is_reported():
    data = b"EmailAddress,UserName,Password,TargetPassword,IncludeFolders\nann@new.example,ann,pw,t,([\n"
    assert "line 2: IncludeFolders '([' is not a valid regular expression" in problems(data)[0]


@pytest.mark.parametrize(
    "address",
    [
        "a@b",
        "a b@new.example",
        "a@@new.example",
        "a@-bad.example",
        "a..b@new.example",
        "@new.example",
    ],
)
def test_malformed_addresses(address):
    data = (HEADER + f"{address},u,p,t\r\n").encode()
    assert "is not a valid address" in problems(data)[0]


def test_too_large_file_is_refused_before_parsing():
    data = HEADER.encode() + b"x" * MAX_BYTES
    (problem,) = problems(data)
    assert "the limit is 10485760" in problem


def test_too_many_rows():
    lines = [HEADER] + [f"u{i}@new.example,u{i},p,t\r\n" for i in range(MAX_ROWS + 1)]
    found = problems("".join(lines).encode())
    assert found == [f"line {MAX_ROWS + 2}: more than {MAX_ROWS} mailbox rows in one batch"]


def test_every_problem_of_a_big_file_is_reported():
    lines = [HEADER] + ["bad,u,p,t\r\n" for _ in range(500)]
    found = problems("".join(lines).encode())
    assert len(found) == 500
    assert found[-1] == "line 501: EmailAddress 'bad' is not a valid address"


def test_empty_and_header_only_files():
    assert problems(b"") == ["the CSV is empty: expected a header EmailAddress,UserName,Password"]
    assert problems(HEADER.encode()) == ["the CSV has no mailbox rows"]


def test_unterminated_quote_is_an_error_not_a_crash():
    data = (HEADER + 'ann@new.example,"ann,pw,tpw\r\n').encode()
    assert problems(data)


@pytest.mark.parametrize("cell", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_cells_are_neutralised(cell):
    assert neutralise(cell) == "'" + cell
    text = render_csv(["reason"], [{"reason": cell}])
    (_, row) = list(csv.reader(io.StringIO(text, newline="")))
    assert row == ["'" + cell]


def test_plain_cells_and_numbers_are_left_alone():
    assert neutralise("INBOX") == "INBOX"
    assert neutralise(-5) == "-5"
    assert neutralise(None) == ""
    assert neutralise(value=True) == "true"
