"""Product cards and grids."""

from __future__ import annotations

from typing import Any

import reflex as rx


def cover(item: Any, *, height: str | None = None, lazy: bool = True) -> rx.Component:
    """A product's cover from a card's or page's ``cover_url``, ``cover_width``,
    ``cover_height`` and ``cover_alt`` (web.state.format.cover_fields). Covers are
    portrait (3:4, like box art): shown whole at that ratio, or cropped around the title
    when a fixed ``height`` is asked for. The intrinsic width and height let the browser
    keep the room before the image arrives. ``lazy``: load it when it nears the screen
    (grids); the product page's own cover loads at once."""
    url = item["cover_url"]
    size: dict[str, Any] = (
        {"height": height, "object_position": "center 35%"}
        if height
        else {"aspect_ratio": "3 / 4", "height": "auto"}
    )
    return rx.cond(
        url != "",
        rx.image(
            src=url,
            alt=item["cover_alt"],
            custom_attrs={"width": item["cover_width"], "height": item["cover_height"]},
            loading="lazy" if lazy else "eager",
            decoding="async",
            width="100%",
            object_fit="cover",
            border_radius="var(--radius-2)",
            **size,
        ),
        rx.box(
            width="100%",
            background="var(--gray-a4)",
            border_radius="var(--radius-2)",
            **({"height": height} if height else {"aspect_ratio": "3 / 4"}),
        ),
    )


def product_card(item: Any) -> rx.Component:
    return rx.card(
        rx.link(
            rx.vstack(
                cover(item),
                rx.text(item["title"], weight="bold", size="3", class_name="product-title"),
                rx.hstack(
                    rx.badge(item["platform"], variant="soft"),
                    rx.badge(item["region"], variant="outline"),
                    spacing="1",
                    wrap="wrap",
                ),
                rx.hstack(
                    rx.text(item["price"], weight="bold", size="4"),
                    rx.cond(
                        item["list_price"] != "",
                        rx.text(item["list_price"], size="2", color_scheme="gray", as_="s"),
                    ),
                    rx.cond(
                        item["discount"] != "", rx.badge(item["discount"], color_scheme="green")
                    ),
                    align="baseline",
                    spacing="2",
                ),
                rx.text(item["badge"], size="1", color_scheme="gray"),
                spacing="2",
                align="start",
            ),
            href=item["href"],
            underline="none",
            display="block",
            border_radius="var(--radius-2)",
            _focus_visible={"outline": "2px solid var(--accent-9)", "outline_offset": "4px"},
            color_scheme="gray",
            high_contrast=True,
        ),
        class_name="product-card",
        data_slug=item["slug"],
    )


def product_grid(items: Any, *, grid_id: str = "") -> rx.Component:
    return rx.grid(
        rx.foreach(items, product_card),
        columns=rx.breakpoints(initial="2", sm="3", md="4"),
        spacing="3",
        width="100%",
        id=grid_id or None,
    )
