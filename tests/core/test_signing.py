import pytest

from core.signing import InvalidToken, check_token, make_token


def test_tokens_verify_for_their_purpose_until_they_expire(test_settings):
    token = make_token("blob", "keys/abc.png", ttl_seconds=900, now=1_000_000)
    assert check_token("blob", token, now=1_000_500) == "keys/abc.png"
    with pytest.raises(InvalidToken, match="expired"):
        check_token("blob", token, now=1_000_901)
    with pytest.raises(InvalidToken, match="not valid"):
        check_token("portal", token, now=1_000_500)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],
        lambda t: t.replace(t.split(".")[1], str(int(t.split(".")[1]) + 3600)),
        lambda t: "a2V5cy9vdGhlci5wbmc." + ".".join(t.split(".")[1:]),
        lambda t: "garbage",
        lambda t: "",
    ],
)
def test_tampered_tokens_are_refused(test_settings, mangle):
    token = make_token("blob", "keys/abc.png", ttl_seconds=900, now=1_000_000)
    with pytest.raises(InvalidToken):
        check_token("blob", mangle(token), now=1_000_100)
