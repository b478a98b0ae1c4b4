"""bench/sandbox: what hostile templates cost the renderer, in memory and time.

    python -m bench.sandbox

Renders each template below once in the campaign sandbox (engine.rendering), under
tracemalloc, and prints its peak memory, its wall time and what became of it: rendered, or
refused with the budget's reason. The first group is the heaviest that a render accepts; the
rest are refused, and should be refused before they cost much. The figures depend on the
machine (time) and the Python version (memory); no test asserts them.
"""

from __future__ import annotations

import time
import tracemalloc

from engine.rendering import MAX_RENDER_BYTES, RenderError, TemplateRenderer

MiB = 1024 * 1024
WIDE = "{% set w = '\\U0001f600' * 500000 %}"  # 500,000 characters of 4 bytes: 2 MiB
BIG = "{% set big = 'x' * 500000 %}"
CONTEXT = {"brand_name": "Acme", "offer_title": "Ten percent off", "note": "See you Saturday!"}

HEAVIEST_ACCEPTED = {
    "seven 2 MiB strings alive at once": WIDE
    + "".join(f"{{% set a{i} = w ~ {i} %}}" for i in range(7))
    + "{{ a1|length }}",
    "a {% set %} block of 2 Mi characters": WIDE + "{% set x %}{{ w }}{{ w }}{{ w }}{{ w }}{% endset %}{{ x|length }}",
    "512 Ki characters of output": WIDE + "{{ w }}",
    "three macro results of 1.5 MiB": "{% macro m() %}{{ '\\U0001f600' * 400000 }}{% endmacro %}"
    "{% set a = m() %}{% set b = m() %}{% set c = m() %}{{ a|length }}",
}
REFUSED = {
    "format widths times a repetition": "{{ ('{x:\\U0001f600>9999}' * 2000).format_map({'x': 1}) }}",
    "%-format widths": "{{ ('%9999s' * 2000)|format(*range(2000)) }}",
    "ten nested lists, repeated, printed": "{% set a = [[[[[[[[[['x' * 500000]]]]]]]]]] %}{{ (a * 10000)|string }}",
    "300 copies in one list literal": BIG + "{{ [" + ", ".join(f"big ~ {i}" for i in range(300)) + "]|length }}",
    "a thousand slices": BIG + "{% for i in range(1000) %}{% set b = big[i:] %}{% endfor %}",
    "a list of 500,000 characters": WIDE + "{{ w|list|length }}",
    "a list's repr, ten times its text": "{% set a = ['\\x01' * 100000] %}{{ a }}",
    "percent-encoding emoji": WIDE + "{{ w|urlencode }}",
    "a doubling namespace, printed": "{% set ns = namespace(a=1) %}{% for i in range(40) %}"
    "{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns }}",
    "counting in a long string, 10,000 times": BIG
    + "{% for i in range(10000) %}{% if big.count('y') %}{% endif %}{% endfor %}",
    "comparing long strings, 10,000 times": BIG
    + "{% set copy = big ~ '' %}{% for i in range(100) %}{% for j in range(100) %}{% if big == copy %}{% endif %}"
    "{% endfor %}{% endfor %}",
    "endless output": "{% for i in range(10000) %}{{ note * 100 }}{% endfor %}",
    "3,000 nested brackets": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    "30 nested loops": "{% for a in [1] %}" * 30 + "x" + "{% endfor %}" * 30,
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
}


def measure(source: str) -> tuple[float, float, str]:
    renderer = TemplateRenderer()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = f"rendered, {len(renderer.render('email.txt', source, CONTEXT)):,} characters"
    except RenderError as error:
        outcome = f"refused: {str(error).removeprefix('email.txt: ')}"
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / MiB, seconds, outcome


def main() -> None:
    print(f"render budget: {MAX_RENDER_BYTES / MiB:g} MiB of values built")
    for title, group in (("heaviest accepted", HEAVIEST_ACCEPTED), ("refused", REFUSED)):
        print(f"\n{title}:")
        for name, source in group.items():
            peak, seconds, outcome = measure(source)
            print(f"  {name:42} {peak:6.1f} MiB {seconds:6.2f} s  {outcome[:100]}")


if __name__ == "__main__":
    main()
