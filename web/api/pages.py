"""Pages a crawler can read without JavaScript.

Reflex serves every page as a static shell (the prerendered page with empty state, or the
empty SPA fallback for ``/games/<slug>``) that the browser fills over the websocket.
:func:`fill_pages` wraps the whole ASGI app (``api_transformer``) and fills that shell in
the backend before it is sent, for every page route:

- the head: ``<title>``, meta description, canonical URL, OpenGraph and, on a product
  page, schema.org ``Product`` JSON-LD with its ``Offer`` (price, currency, availability);
  private pages (cart, payment, orders, account) say ``noindex``;
- the body: a plain-HTML version of the page's content (header navigation, the product's
  name, price and description, or the list of games) placed before the app's own markup;
  a stylesheet hides it as soon as the app has rendered its ``<main id="ks-main">``, so
  it is what a crawler reads and what a visitor sees until the app takes over;
- the status: 404 for an unknown product or path, with a page that links back.

``/sitemap.xml`` (every active product) and ``/robots.txt`` are answered here too.
Everything the pages show comes from ``core.services.storefront`` and
``core.services.catalogue``; money through ``core.money``.

Languages (``core.i18n``; README "Two languages"): every page exists in English at its
address and in German under ``/de``. A page is filled in its language (``<html lang>``,
texts, money and dates) and names both versions with ``hreflang`` alternates (English as
``x-default``); the sitemap lists both with ``xhtml:link`` alternates. A first visit
(no ``ks_lang`` cookie) to an English address from a browser whose Accept-Language
prefers German is sent to the German one; ``/lang/<code>?next=/path`` (the header's
switcher) stores the choice in ``ks_lang`` and opens the page in that language; an English
address asked for with ``ks_lang=de`` goes to its German twin. German addresses are never
redirected, so crawlers (no cookie) read each language at its own address.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import get_settings
from core.db import session_scope
from core.errors import UnknownProduct
from core.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    N_,
    current_language,
    localised_path,
    negotiate,
    normalise_language,
    split_path,
    use_language,
)
from core.i18n import gettext as _
from core.money import format_money, to_decimal
from web.api.security import cookie_header, parse_cookies
from web.state.format import product_page_title

SITE_NAME: Final = "keyshop"
SITE_DESCRIPTION: Final = N_(
    "Game keys delivered in seconds: buy, pay and reveal your key at once."
)
# Paths that are never pages: the HTTP API, the websocket, built assets, Reflex's own.
NOT_PAGES: Final = ("/api/", "/_event", "/assets/", "/_upload", "/ping", "/_health", "/_all_")
PRIVATE_PAGES: Final = re.compile(
    r"^/(cart|pay/[^/]+|orders/[^/]+|receipts/[^/]+|keys|account|reset-password)$"
)
#: The cookie that remembers the customer's language (set by /lang/<code>, read here).
LANGUAGE_COOKIE: Final = "ks_lang"
LANGUAGE_COOKIE_SECONDS: Final = 365 * 86_400
KNOWN_PAGES: Final = re.compile(
    r"^/(|games|games/[^/]+|cart|pay/[^/]+|orders/[^/]+|receipts/[^/]+|keys|signin|signup"
    r"|forgot-password|reset-password|account|find-order|gift-card|legal/[^/]+)$"
)
# A request with this header gets the page as Reflex alone serves it (the empty shell):
# the baseline of bench/product_page.py. It changes nothing but the asker's own answer.
SHELL_HEADER: Final = b"x-keyshop-shell"
DESCRIPTION_CHARS: Final = 160
CATALOGUE_PER_PAGE: Final = 24
# Dropped from the inner request: the filled page is made fresh (no 304, no sidecars).
_DROPPED_REQUEST_HEADERS: Final = {b"accept-encoding", b"if-none-match", b"if-modified-since"}
_DROPPED_RESPONSE_HEADERS: Final = {
    b"content-length",
    b"content-encoding",
    b"etag",
    b"last-modified",
    b"cache-control",
    b"vary",
}
# The app renders its content into <main id="ks-main"> (web/components/layout.py).
_HIDE_ONCE_RENDERED: Final = (
    "<style>body:has(#ks-main) #ks-prerender{display:none}"
    "#ks-prerender{font-family:system-ui,sans-serif;max-width:1200px;margin:0 auto;"
    "padding:1em;color:#1a1523;line-height:1.5}"
    "#ks-prerender a{color:#5b2bb5}#ks-prerender nav a{margin-right:1em}"
    "#ks-prerender li{margin:.25em 0}</style>"
)


@dataclass
class Page:
    """What is put into one shell."""

    status: int = 200
    title: str = ""
    description: str = ""  # "": the site's description, in the page's language
    canonical: str = ""
    index: bool = True
    og_type: str = "website"
    image: str = ""
    json_ld: dict[str, Any] | None = None
    body: str = ""  # the page's own content, HTML-escaped already
    extra_head: list[str] = field(default_factory=list)
    language: str = DEFAULT_LANGUAGE
    path: str = ""  # the page's English path: its address in each language is derived


def is_page_path(path: str) -> bool:
    """A path the storefront might answer with a page: not the API, not an asset, not a
    file (a dot in the last segment)."""
    if path.startswith(NOT_PAGES) or path in ("/ping", "/_health"):
        return False
    return "." not in path.rsplit("/", 1)[-1]


def public_url(path: str) -> str:
    return get_settings().public_url.rstrip("/") + path


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _image(url: str | None) -> str:
    """An absolute image address for OpenGraph and JSON-LD; data: URIs have none."""
    if not url or url.startswith("data:"):
        return ""
    return url if url.startswith(("http://", "https://")) else public_url("/" + url.lstrip("/"))


# -- the pages ------------------------------------------------------------------------------


def _href(path: str) -> str:
    """``path`` (English) in the language in force."""
    return _e(localised_path(path))


def _tag(name: str, text: str) -> str:
    return f"<{name}>{_e(text)}</{name}>"


def _money(minor: int | None, currency: str) -> str:
    return format_money(minor, currency, language=current_language())


def _nav() -> str:
    links = [("/", "keyshop"), ("/games", _("Games")), ("/cart", _("Cart"))]
    links.append(("/signin", _("Sign in")))
    anchors = "".join(f'<a href="{_href(path)}">{_e(text)}</a>' for path, text in links)
    label = _("Main")
    return f'<header><nav aria-label="{_e(label)}">{anchors}</nav></header>'


def _product_list(hits: list[Any]) -> str:
    items = "".join(
        f'<li><a href="{_href("/games/" + quote(h.slug))}">{_e(h.title)}</a> · '
        f"{_e(h.platform)} · {_e(_money(h.price_minor, h.currency))}</li>"
        for h in hits
    )
    return f"<ul>{items}</ul>" if items else ""


def home_page() -> Page:
    from core.services.storefront import home_sections

    with session_scope(write=False) as session:
        sections = home_sections(session=session, per_section=8)
    parts = []
    for name, hits in (
        (_("Featured"), sections.featured),
        (_("Deals"), sections.deals),
        (_("New releases"), sections.new_releases),
        (_("Pre-orders"), sections.preorders),
    ):
        if hits:
            parts.append(f"<h2>{_e(name)}</h2>{_product_list(hits)}")
    return Page(
        title=_("keyshop — game keys"),
        canonical=public_url(localised_path("/")),
        path="/",
        body=_tag("h1", _("Game keys, delivered in seconds"))
        + _tag("p", _(SITE_DESCRIPTION))
        + "".join(parts),
    )


def catalogue_page(query_string: str) -> Page:
    from core.services.catalogue import search_products

    params = parse_qs(query_string)
    query = (params.get("q") or [""])[0][:200].strip()
    raw_page = (params.get("page") or ["1"])[0]
    number = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10_000 else 1
    with session_scope(write=False) as session:
        result = search_products(
            session=session, query=query or None, page=number, per_page=CATALOGUE_PER_PAGE
        )
    heading = _("Games matching “%(query)s”") % {"query": query} if query else _("Games")
    pager = ""
    if result.has_next and not query:
        more = _("Next page")
        pager = f'<p><a href="{_href("/games")}?page={number + 1}">{_e(more)}</a></p>'
    path = "/games" + (f"?page={number}" if number > 1 else "")
    return Page(
        title=(
            _("%(query)s · Games · keyshop") % {"query": query} if query else _("Games · keyshop")
        ),
        description=_(
            "Every game key in the shop: Steam, GOG, Xbox and more, delivered in seconds."
        ),
        canonical=public_url(localised_path(path)),
        path=path,
        index=not query,  # search results are not pages of their own
        body=f"<h1>{_e(heading)}</h1>"
        + (_product_list(result.items) or _tag("p", _("No games match.")))
        + pager,
    )


def _availability(detail: Any) -> str:
    if not detail.can_buy:
        return "https://schema.org/OutOfStock"
    return "https://schema.org/PreOrder" if detail.is_preorder else "https://schema.org/InStock"


def product_page(slug: str) -> Page:
    from core.services.storefront import product_detail

    try:
        with session_scope(write=False) as session:
            detail = product_detail(session=session, slug=slug)
    except UnknownProduct:
        return not_found_page(_("We could not find that game: it may have been removed."))
    path = f"/games/{quote(detail.slug)}"
    price = _money(detail.price_minor, detail.currency)
    description = _short(
        detail.description
        or _("%(title)s key for %(platform)s (%(region)s), delivered in seconds.")
        % {"title": detail.title, "platform": detail.platform, "region": detail.region}
    )
    image = _image(detail.cover.src if detail.cover else None)
    offer: dict[str, Any] = {
        "@type": "Offer",
        "url": public_url(localised_path(path)),
        "price": str(to_decimal(detail.price_minor, detail.currency)),
        "priceCurrency": detail.currency,
        "availability": _availability(detail),
        "itemCondition": "https://schema.org/NewCondition",
    }
    ld: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": detail.title,
        "description": detail.description or description,
        "sku": detail.slug,
        "category": detail.genre or _("Video games"),
        "offers": offer,
    }
    if detail.publisher:
        ld["brand"] = {"@type": "Brand", "name": detail.publisher}
    if image:
        ld["image"] = image
    facts = " · ".join(_e(x) for x in (detail.platform, detail.region, detail.genre) if x)
    return Page(
        title=product_page_title(detail.title, detail.platform),
        description=description,
        canonical=public_url(localised_path(path)),
        path=path,
        og_type="product",
        image=image,
        json_ld=ld,
        extra_head=[
            f'<meta property="product:price:amount" content="{offer["price"]}"/>',
            f'<meta property="product:price:currency" content="{_e(detail.currency)}"/>',
        ],
        body=f"<h1>{_e(detail.title)}</h1><p>{facts}</p>"
        f"<p><strong>{_e(price)}</strong> · {_e(detail.availability)}</p>"
        + (f"<p>{_e(detail.region_warning)}</p>" if detail.region_warning else "")
        + f"<p>{_e(detail.description)}</p>",
    )


def not_found_page(message: str = "") -> Page:
    message = message or _("There is no page at this address.")
    home, browse = _("Home"), _("Browse all games")
    return Page(
        status=404,
        title=_("Page not found · keyshop"),
        description=message,
        index=False,
        body=_tag("h1", _("Page not found"))
        + _tag("p", message)
        + f'<p><a href="{_href("/")}">{_e(home)}</a> · '
        f'<a href="{_href("/games")}">{_e(browse)}</a></p>',
    )


def legal_page(slug: str) -> Page:
    """A legal page (core.services.legal): its title; 404 for a page the shop has not."""
    from core.services.legal import UnknownPage, get_page

    try:
        with session_scope(write=False) as session:
            view = get_page(session=session, slug=slug)
    except UnknownPage:
        return not_found_page()
    path = f"/legal/{quote(view.slug)}"
    return Page(
        title=f"{view.title} · keyshop",
        canonical=public_url(localised_path(path)),
        path=path,
        body=_tag("h1", view.title),
    )


def other_page(path: str) -> Page:
    """A page whose content is the customer's own (or a form): its prerendered title
    stays, private pages are kept out of the index."""
    return Page(
        canonical=public_url(localised_path(path)),
        path=path,
        index=not PRIVATE_PAGES.match(path),
    )


def page_for(path: str, query_string: str, shell_status: int) -> Page:
    """Which page ``path`` is (without a trailing slash; under ``/de`` in German), built
    from the database in its language."""
    language, bare = split_path(path)
    with use_language(language):
        page = _page_for(bare, query_string, shell_status)
    page.language = language
    return page


def _page_for(path: str, query_string: str, shell_status: int) -> Page:
    if shell_status == 404 or not KNOWN_PAGES.match(path):
        return not_found_page()
    if path == "/":
        return home_page()
    if path == "/games":
        return catalogue_page(query_string)
    if path.startswith("/games/"):
        return product_page(unquote(path.removeprefix("/games/")))
    if path.startswith("/legal/"):
        return legal_page(unquote(path.removeprefix("/legal/")))
    return other_page(path)


# -- filling the shell ----------------------------------------------------------------------


def alternates(path: str) -> list[tuple[str, str]]:
    """(hreflang, absolute URL) of the page at English ``path`` in every language, and
    ``x-default`` (the English one: where a visitor with no match lands)."""
    links = [(code, public_url(localised_path(path, code))) for code in LANGUAGES]
    return [*links, ("x-default", public_url(localised_path(path, DEFAULT_LANGUAGE)))]


def head_html(page: Page) -> str:
    tags = []
    with use_language(page.language):
        description = page.description or _(SITE_DESCRIPTION)
    if page.title:
        tags.append(f"<title>{_e(page.title)}</title>")
        tags.append(f'<meta property="og:title" content="{_e(page.title)}"/>')
    tags.append(f'<meta name="description" content="{_e(description)}"/>')
    tags.append(f'<meta property="og:description" content="{_e(description)}"/>')
    tags.append(f'<meta property="og:locale" content="{_OG_LOCALES[page.language]}"/>')
    if page.index and page.path and page.status == 200:
        for code, url in alternates(page.path):
            tags.append(f'<link rel="alternate" hreflang="{code}" href="{_e(url)}"/>')
    tags.append(f'<meta property="og:site_name" content="{SITE_NAME}"/>')
    tags.append(f'<meta property="og:type" content="{page.og_type}"/>')
    if page.canonical:
        tags.append(f'<link rel="canonical" href="{_e(page.canonical)}"/>')
        tags.append(f'<meta property="og:url" content="{_e(page.canonical)}"/>')
    if page.image:
        tags.append(f'<meta property="og:image" content="{_e(page.image)}"/>')
    tags.append('<meta name="twitter:card" content="summary"/>')
    if not page.index:
        tags.append('<meta name="robots" content="noindex, follow"/>')
    tags.extend(page.extra_head)
    if page.json_ld is not None:
        # "<" escaped so no text of a product can close the script element
        data = json.dumps(page.json_ld, ensure_ascii=False).replace("<", "\\u003c")
        tags.append(f'<script type="application/ld+json">{data}</script>')
    return "".join(tags)


_OG_LOCALES: Final = {"en": "en_GB", "de": "de_DE"}
_TITLE = re.compile(r"<title>.*?</title>", re.S)
_HTML_TAG = re.compile(r"<html\b([^>]*)>", re.I)
_LANG_ATTR = re.compile(r"""\s+lang=("[^"]*"|'[^']*'|[^\s>]*)""", re.I)
_REPLACED_META = re.compile(
    r'<meta content="[^"]*" (?:name="description"|property="og:image")/>', re.S
)


def fill(shell: str, page: Page) -> str:
    """``shell`` with ``page``'s head tags and content. The shell's own title and
    description are replaced (React 19 leaves unknown elements in ``<head>`` and directly
    in ``<body>`` alone when it hydrates, so the app works on the filled page as on the
    shell)."""
    if page.title:
        shell = _TITLE.sub("", shell)
    shell = _REPLACED_META.sub("", shell)
    shell = _HTML_TAG.sub(
        lambda m: f'<html{_LANG_ATTR.sub("", m.group(1))} lang="{page.language}">', shell, count=1
    )
    shell = shell.replace("</head>", head_html(page) + "</head>", 1)
    if page.body:
        with use_language(page.language):
            nav = _nav()
            tagline = _("keyshop — digital game keys, delivered in seconds.")
        block = (
            f'{_HIDE_ONCE_RENDERED}<div id="ks-prerender">{nav}'
            f"<main>{page.body}</main>"
            f"<footer><p>{_e(tagline)}</p></footer></div>"
        )
        shell = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + block, shell, count=1)
    return shell


def robots_txt() -> str:
    private = ("/cart", "/pay/", "/orders/", "/receipts/", "/keys", "/account", "/reset-password")
    lines = ["User-agent: *", "Disallow: /api/", "Disallow: /lang/"]
    lines += [f"Disallow: {localised_path(p, code)}" for code in LANGUAGES for p in private]
    return "\n".join([*lines, f"Sitemap: {public_url('/sitemap.xml')}"]) + "\n"


def sitemap_xml() -> str:
    from core.services.storefront import listed_products

    with session_scope(write=False) as session:
        listed = listed_products(session=session)
    pages: list[tuple[str, str]] = [("/", ""), ("/games", "")]
    pages += [("/games/" + quote(p.slug), p.updated_at.isoformat()) for p in listed]
    urls = []
    for path, lastmod in pages:
        # one <url> per language, each naming every version (Google's sitemap hreflang)
        links = "".join(
            f'<xhtml:link rel="alternate" hreflang="{code}" href="{_e(url)}"/>'
            for code, url in alternates(path)
        )
        for code in LANGUAGES:
            urls.append(
                f"<url><loc>{_e(public_url(localised_path(path, code)))}</loc>"
                + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
                + links
                + "</url>"
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
        ' xmlns:xhtml="http://www.w3.org/1999/xhtml">' + "".join(urls) + "</urlset>\n"
    )


# -- the language: first visit, the switcher, the remembered choice -------------------------


def _cookies(scope: Scope) -> dict[str, str]:
    return parse_cookies(_header(scope, b"cookie"))


def _header(scope: Scope, name: bytes) -> str:
    return dict(scope.get("headers") or []).get(name, b"").decode("latin-1")


def language_cookie(language: str) -> tuple[bytes, bytes]:
    value = cookie_header(LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_SECONDS)
    return b"set-cookie", value.encode()


def safe_next(value: str) -> str:
    """A local path to go on to (``/games/x?q=1``); anything else (another host, a
    scheme, a backslash trick) is the home page."""
    value = unquote(value or "/")
    if not value.startswith("/") or value.startswith(("//", "/\\")) or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 for c in value):
        return "/"
    return value


def switch_language(language: str, query_string: str) -> tuple[int, str, list[tuple[bytes, bytes]]]:
    """``/lang/<language>?next=/path``: the page at ``next`` in ``language``, remembered."""
    code = normalise_language(language)
    target = safe_next((parse_qs(query_string).get("next") or ["/"])[0])
    path, _sep, query = target.partition("?")
    _old, bare = split_path(path)
    location = localised_path(bare, code) + (f"?{query}" if query else "")
    return 303, location, [language_cookie(code), (b"cache-control", b"no-store")]


def preferred_redirect(scope: Scope) -> tuple[str, list[tuple[bytes, bytes]]] | None:
    """Where an English page request goes instead, by the remembered language or, on a
    first visit, the browser's Accept-Language: (location, headers), or None to serve it."""
    path: str = scope["path"]
    language, _bare = split_path(path)
    if language != DEFAULT_LANGUAGE:
        return None
    remembered = _cookies(scope).get(LANGUAGE_COOKIE)
    wanted = (
        normalise_language(remembered)
        if remembered
        else negotiate(_header(scope, b"accept-language"))
    )
    if wanted == DEFAULT_LANGUAGE:
        return None
    query = scope.get("query_string", b"").decode("latin-1")
    location = localised_path(path, wanted) + (f"?{query}" if query else "")
    headers = [] if remembered else [language_cookie(wanted)]
    return location, headers


# -- the ASGI wrapper -----------------------------------------------------------------------


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    head: bool,
    scope: Scope,
) -> None:
    accepts = dict(scope.get("headers") or []).get(b"accept-encoding", b"")
    if b"gzip" in accepts and len(body) > 1024:
        body = gzip.compress(body, compresslevel=5)
        headers = [*headers, (b"content-encoding", b"gzip")]
    headers = [
        *headers,
        (b"content-length", str(len(body)).encode()),
        (b"vary", b"Accept-Encoding"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class PageFiller:
    """The ASGI wrapper; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        head = scope["method"] == "HEAD"
        if path.startswith("/lang/") and path.count("/") == 2:
            status, location, extra = switch_language(
                path.removeprefix("/lang/"), scope.get("query_string", b"").decode("latin-1")
            )
            await _respond(
                send,
                status,
                b"",
                [(b"location", location.encode()), *extra],
                head=head,
                scope=scope,
            )
            return
        if path in ("/robots.txt", "/sitemap.xml"):
            text = robots_txt() if path == "/robots.txt" else await run_in_threadpool(sitemap_xml)
            kind = b"text/plain; charset=utf-8" if path == "/robots.txt" else b"application/xml"
            await _respond(
                send,
                200,
                text.encode(),
                [(b"content-type", kind), (b"cache-control", b"public, max-age=600")],
                head=head,
                scope=scope,
            )
            return
        if not is_page_path(path) or (SHELL_HEADER, b"1") in (scope.get("headers") or []):
            await self.app(scope, receive, send)
            return
        redirect = preferred_redirect(scope)
        if redirect is not None:
            location, extra = redirect
            vary = (b"vary", b"Accept-Language, Cookie")
            await _respond(
                send,
                307,
                b"",
                [(b"location", location.encode()), (b"cache-control", b"no-store"), vary, *extra],
                head=head,
                scope=scope,
            )
            return
        await self._page(scope, receive, send, head=head)

    async def _shell(
        self, scope: Scope, receive: Receive, path: str
    ) -> tuple[Message, list[bytes]]:
        """What the static frontend answers for ``path``, in memory."""
        inner = dict(scope)
        inner["method"] = "GET"
        inner["path"] = path
        inner["raw_path"] = path.encode()
        # answered in memory here: no path- or zero-copy sending of the shell file (granian)
        inner["extensions"] = {
            k: v
            for k, v in (scope.get("extensions") or {}).items()
            if k not in ("http.response.pathsend", "http.response.zerocopysend")
        }
        inner["headers"] = [
            (k, v) for k, v in scope.get("headers") or [] if k not in _DROPPED_REQUEST_HEADERS
        ]
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(inner, receive, capture)
        return start, chunks

    async def _page(self, scope: Scope, receive: Receive, send: Send, *, head: bool) -> None:
        start, chunks = await self._shell(scope, receive, scope["path"])
        location = dict(start.get("headers") or []).get(b"location", b"").decode("latin-1")
        if start.get("status") in (301, 302, 307, 308) and location.split("?")[0].endswith(
            scope["path"] + "/"
        ):
            # /games is /games/index.html: served at once rather than redirected
            start, chunks = await self._shell(scope, receive, scope["path"] + "/")
        status = int(start.get("status", 500))
        headers = list(start.get("headers") or [])
        content_type = dict(headers).get(b"content-type", b"")
        if status not in (200, 404) or not content_type.startswith(b"text/html"):
            await send(start)
            await send({"type": "http.response.body", "body": b"" if head else b"".join(chunks)})
            return
        path = scope["path"].rstrip("/") or "/"
        query = scope.get("query_string", b"").decode("latin-1")
        page = await run_in_threadpool(page_for, path, query, status)
        body = fill(b"".join(chunks).decode("utf-8"), page).encode("utf-8")
        kept = [(k, v) for k, v in headers if k.lower() not in _DROPPED_RESPONSE_HEADERS]
        kept.append((b"cache-control", b"no-cache"))
        await _respond(send, page.status, body, kept, head=head, scope=scope)


def fill_pages(app: ASGIApp) -> ASGIApp:
    """The ``api_transformer`` step that fills the page shells (see the module docstring)."""
    return PageFiller(app)


__all__ = ["PageFiller", "fill", "fill_pages", "page_for", "robots_txt", "sitemap_xml"]
