import pytest

from pyrunc.errors import ConfigError
from pyrunc.security.identity import DEFAULT_UMASK, Identity, parse_user


def test_full():
    assert parse_user({"uid": 10, "gid": 11, "additionalGids": [5, 6], "umask": 0o002}) == \
        Identity(10, 11, (5, 6), 0o002)


def test_defaults():
    assert parse_user({"uid": 1, "gid": 2}) == Identity(1, 2, (), DEFAULT_UMASK)
    assert DEFAULT_UMASK == 0o022
    assert parse_user(None) == Identity(0, 0, (), 0o022)
    assert parse_user({}) == Identity(0, 0, (), 0o022)
    assert parse_user({"uid": 0, "gid": 0, "umask": 0}).umask == 0


def test_username_ignored():
    assert parse_user({"uid": 3, "gid": 3, "username": "ignored"}).uid == 3


@pytest.mark.parametrize("user,where", [
    ({"uid": -1, "gid": 0}, "process.user.uid"),
    ({"uid": 0xFFFFFFFF, "gid": 0}, "process.user.uid"),
    ({"uid": "0", "gid": 0}, "process.user.uid"),
    ({"uid": True, "gid": 0}, "process.user.uid"),
    ({"uid": 0, "gid": 1.5}, "process.user.gid"),
    ({"uid": 0, "gid": 0, "additionalGids": [1, -2]}, "process.user.additionalGids[1]"),
    ({"uid": 0, "gid": 0, "additionalGids": 5}, "process.user.additionalGids"),
    ({"uid": 0, "gid": 0, "umask": 0o1000}, "process.user.umask"),
    ({"uid": 0, "gid": 0, "umask": "022"}, "process.user.umask"),
])
def test_errors(user, where):
    with pytest.raises(ConfigError) as ei:
        parse_user(user)
    assert ei.value.where == where


def test_not_object():
    with pytest.raises(ConfigError) as ei:
        parse_user([0, 0], where="p.user")
    assert ei.value.where == "p.user"


def test_max_id_ok():
    assert parse_user({"uid": 0xFFFFFFFE, "gid": 65534}).uid == 0xFFFFFFFE
