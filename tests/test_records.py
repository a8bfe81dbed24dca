import pytest

from smoothadv.errors import UserError
from smoothadv.records.files import (
    CERTIFY_COLUMNS,
    RecordWriter,
    format_time,
    parse_time,
    read_records,
)

from .conftest import shared_path


def test_time_format():
    assert format_time(14.172309) == "0:00:14.172309"
    assert format_time(3723.5) == "1:02:03.500000"
    assert parse_time("1:02:03.500000") == pytest.approx(3723.5)
    assert parse_time("1 day, 0:00:01") == pytest.approx(86401)


def test_writer_flushes_and_resumes_after_a_torn_row(tmp_path):
    path = tmp_path / "cert.tsv"
    w = RecordWriter(path, CERTIFY_COLUMNS)
    w.write(0, 3, 3, 0.5, 1, format_time(1))
    assert path.read_text().count("\n") == 2  # visible before close
    w.write(20, 8, -1, 0.0, 0, format_time(1))
    w.close()
    with open(path, "a") as f:
        f.write("40\t1\t1\t0.2")  # a run killed mid-row
    w = RecordWriter(path, CERTIFY_COLUMNS)
    assert w.done == {0, 20}
    w.write(40, 1, 1, 0.25, 1, format_time(2))
    w.close()
    rec = read_records(path)
    assert rec["idx"].tolist() == [0, 20, 40] and rec["radius"].tolist() == [0.5, 0.0, 0.25]


def test_writer_refuses_another_header(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(UserError, match="not a record file of these columns"):
        RecordWriter(path, CERTIFY_COLUMNS)


def test_reader_errors(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(UserError, match="empty record file"):
        read_records(empty)
    missing = tmp_path / "missing.tsv"
    missing.write_text("idx\tlabel\tradius\n0\t1\t0.5\n")
    with pytest.raises(UserError, match=r"missing.tsv:1: missing column\(s\) predict, correct"):
        read_records(missing)
    bad = tmp_path / "bad.tsv"
    bad.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t0:00:01\n"
                   "\n1\t1\t1\tzero\t1\t0:00:01\n")
    with pytest.raises(UserError, match=r"bad.tsv:4: bad value 'zero' in column 'radius'"):
        read_records(bad)
    short = tmp_path / "short.tsv"
    short.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\n")
    with pytest.raises(UserError, match="short.tsv:2: expected 6 fields, found 3"):
        read_records(short)


def test_paper_logs_load_as_is():
    root = shared_path("paper-logs")
    rec = read_records(root / "cifar10/cohen/resnet110/noise_0.25/test/sigma_0.25")
    assert len(rec) == 10_000 and rec["idx"][0] == 0 and rec["time"][0] == pytest.approx(
        14.172309)
    header_only = read_records(
        root / "imagenet/PGD_1step/eps_2048/resnet50/noise_0.25/test/sigma_0.25")
    assert header_only.is_empty
