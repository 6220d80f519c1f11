"""The character sets Alipay declares in notifies and returns, mapped to Python codecs."""
from __future__ import annotations

# GBK and GB2312 texts decode and re-encode identically with GB18030, which is a superset of
# both and also covers characters that the strict gbk/gb2312 codecs refuse (e.g. rare names).
_CODECS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "gb18030": "gb18030",
}


def codec_for(charset: str | None) -> str | None:
    """Return the Python codec for an Alipay ``charset`` value (default utf-8), or None if unsupported."""
    if charset is None or charset == "":
        return "utf-8"
    return _CODECS.get(charset.strip().lower())
