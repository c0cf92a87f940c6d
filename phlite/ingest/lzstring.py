"""lz-string's decompressFromBase64, for old posthog-js clients that sent `compression=lz64`.

Follows the stream format of lz-string 1.4 (pieroxy/lz-string, `_decompress` with 6-bit base64 input):
an LZW variant over UTF-16 code units. Written here instead of depending on the unmaintained `lzstring`
PyPI package (it pulls in `future`); that package is only a test dependency, to produce inputs.
Imports nothing from phlite.
"""

import re

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
# Each base64 character carries 6 bits, read most significant first, but lz-string assembles values
# least significant bit first: so keep every character's 6 bits reversed and read from the low end.
# "=" (index 64) carries no bits, as in the JS (64 & 32..1 == 0).
_REVERSED = {c: int(f"{i & 63:06b}"[::-1], 2) for i, c in enumerate(_ALPHABET)}
_SURROGATE = re.compile("[\ud800-\udfff]")


class OutputTooLarge(ValueError):
    """The decompressed text would exceed the caller's limit (a compression bomb)."""


def decompress_from_base64(data: str, max_units: int) -> str:
    """Decompress lz-string `compressToBase64` output.

    :param max_units: most UTF-16 code units to produce; the dictionary can never outgrow the output,
        so this also bounds memory.
    :raises OutputTooLarge: past max_units.
    :raises ValueError: for corrupt or truncated input, or text that is not valid UTF-16.
    """
    try:
        values = [_REVERSED[c] for c in data]
    except KeyError:
        raise ValueError("invalid character in lz64 data") from None
    if not values:
        raise ValueError("empty lz64 data")
    total_bits = 6 * len(values)
    acc = nacc = index = consumed = 0

    def bits(count: int) -> int:
        nonlocal acc, nacc, index, consumed
        while nacc < count:
            if index < len(values):  # past the end the JS reads zero bits
                acc |= values[index] << nacc
            index += 1
            nacc += 6
        value = acc & ((1 << count) - 1)
        acc >>= count
        nacc -= count
        consumed += count
        return value

    # Codes 0, 1 and 2 are control codes (8-bit literal, 16-bit literal, end of stream).
    dictionary = ["", "", ""]
    enlarge_in, num_bits = 4, 3
    first = bits(2)
    if first == 2:
        return ""
    if first == 3:
        raise ValueError("corrupt lz64 data")
    w = chr(bits(8 if first == 0 else 16))
    dictionary.append(w)
    out, size = [w], 1
    while True:
        if consumed >= total_bits:
            raise ValueError("truncated lz64 data")
        code = bits(num_bits)
        if code == 2:
            break
        if code < 2:
            dictionary.append(chr(bits(8 if code == 0 else 16)))
            code = len(dictionary) - 1
            enlarge_in -= 1
            if enlarge_in == 0:
                enlarge_in, num_bits = 1 << num_bits, num_bits + 1
        if code < len(dictionary):
            entry = dictionary[code]
            new = w + entry[0]
        elif code == len(dictionary):
            # The entry being defined: the new dictionary entry is the same string, kept once (a
            # bomb is a run of these, and two copies doubled its memory).
            entry = new = w + w[0]
        else:
            raise ValueError("corrupt lz64 data")
        out.append(entry)
        size += len(entry)
        if size > max_units:
            raise OutputTooLarge(f"lz64 output exceeds {max_units} characters")
        dictionary.append(new)
        w = entry
        enlarge_in -= 1
        if enlarge_in == 0:
            enlarge_in, num_bits = 1 << num_bits, num_bits + 1
    dictionary = None
    text = "".join(out)
    out = None
    if _SURROGATE.search(text) is None:  # the usual case: no copy through UTF-16
        return text
    # The chars are UTF-16 code units; pair the surrogates (a lone one is an error, as in PostHog).
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
