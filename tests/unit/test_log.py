"""The error line: one line on stderr whatever the message quotes."""
from pyrunc import log


def test_an_error_quoting_line_breaks_stays_one_line(capsys):
    log.configure(None)
    log.error("root.path: invalid rootfs: stat /b/\n\r\tx\x00\x7f: no such file or directory")
    err = capsys.readouterr().err
    assert err == ("root.path: invalid rootfs: stat /b/\\n\\r\\tx\\x00\\x7f: "
                   "no such file or directory\n")


def test_the_log_file_record_keeps_the_message(tmp_path, capsys):
    log.configure(str(tmp_path / "log"), "json")
    try:
        log.error("a\nb")
    finally:
        log.configure(None)
    assert capsys.readouterr().err == "a\\nb\n"
    assert '"msg":"a\\nb"' in (tmp_path / "log").read_text().replace(" ", "")
