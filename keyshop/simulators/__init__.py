"""Provider simulators: real HTTP servers on loopback that speak the CodesWholesale and
Kinguin contracts (shared/docs/providers.md), with knobs for latency, errors,
out-of-stock, pre-orders, late keys, hangs and crashes. ``keyshop simulate-providers``
runs them; tests start a :class:`SimulatorServer` on a free port.

Every behaviour, and the public source it follows (KG = Kinguin's API documentation
repository, CWSDK = the official CodesWholesale PHP SDK, CWFW = its extension framework;
"assumed" = no source states it, the simulator takes the side a client must survive):

======================================  ==================================================  ====================================================
Behaviour                               Simulated as                                        Source
======================================  ==================================================  ====================================================
KG auth                                 ``X-Api-Key``; else 401 ``kind: Authorization``     KG ``api/README.md``
KG product list                         ``GET /v1/products``: page/limit (max 100),         KG ``api/products/v1/README.md``
                                        ``name`` (3+ chars) and ``platform`` filter,
                                        ``updatedSince``/``To`` in the documented formats
                                        only (else 400)
KG product                              ``GET /v1/products/{kinguinId}``,                   KG ``api/products/v1``, ``v2/README.md``
                                        ``GET /v2/products/{productId}``; 404 when
                                        unavailable
KG names                                ``name`` = "<title> <platform> CD Key",             KG ``api/products/v1/README.md``
                                        ``originalName`` = title
KG text vs image stock                  ``textQty`` 0 for image-key products, ``qty``       KG ``features/KeyType.md``
                                        counts all; ``keyType: text`` on them →
                                        ``ProductUnavailable``; no ``keyType`` → images
KG regions                              ``GET /v1/regions`` ``[{id,name}]``;                KG ``api/products/v1/README.md``
                                        ``regionId`` from it
KG ordering                             ``POST /v2/order`` one line, qty 1..9,              KG ``api/order/v2/README.md``,
                                        ``price`` a ceiling, ``offerId`` filled;            ``features/BuyingPreorders.md``
                                        ``keyType`` refused on a pre-order
KG order completion                     ``processing`` first, keys and ``completed`` after  KG ``api/order/v2/README.md``
                                        ``late_keys_seconds`` (default 1 s; 0 = at once),
                                        then an ``order.status`` webhook
KG same ``orderExternalId``             knob ``duplicate_reference``: ``conflict``          KG commit 3705f70 (promise withdrawn); assumed
                                        (default, 409 ``ConstraintViolation``),
                                        ``existing``, ``duplicate`` (charged again)
KG order lookup                         ``GET /v1/order?orderExternalId=``,                 KG ``api/order/v1/README.md``
                                        ``GET /v1/order/{id}``
KG keys                                 ``GET /v2/order/{id}/keys`` paged, text or          KG ``api/order/v2/README.md``
                                        base64 image ``serial``
KG key returns                          ``POST /v2/order/{id}/keys/return``: once per       KG ``features/ReturnKeys.md``
                                        order, within 24 h, never a pre-order; refunds
                                        the balance; else ``NoKeysToReturn``
KG webhooks                             ``X-Event-Name``, ``X-Event-Secret``; retried       KG ``features/Webhooks.md``
                                        3 times
KG errors                               ``{kind,status,title,detail,path,...}``             KG ``api/ErrorsCodes.md``
CW token                                ``POST /oauth/token``: credentials in a Basic       CWSDK ``GrantTypeBase::getToken``;
                                        header (with ``scope``) or form/query;              golang/oauth2 ``internal/token.go``
                                        ``invalid_token`` 401 on expiry
CW price list                           ``GET /v2/products`` (``continuationToken`` paging  CWSDK ``Resource/Product.php``;
                                        with ``page_size``), tiers ``prices[{from,to,       community v3 SDKs
                                        value}]``
CW ordering                             ``POST /v2/orders`` ``{orderId, allowPreOrder,      CWSDK ``OrderRequest``, ``Order.php``
                                        products[]}`` (several lines, all or nothing),
                                        answer echoes
                                        ``clientOrderId``; shortage → pre-ordered codes
                                        when allowed
CW same ``orderId``                     a second, charged order by default (knob            providers.md Corrections: undocumented; assumed
                                        ``duplicate_reference``)
CW codes                                ``status`` ``Text code``/``Image code``/            CWSDK ``Code.php``, ``Resource.php``
                                        ``Pre-ordered code`` (knob ``code_spelling``);
                                        ``links`` ``rel=self``; ``GET /v2/codes/{id}``
CW history                              ``GET /v2/orders?startFrom&endOn`` (≤ 31 days)      CWSDK ``Order::getHistory``; window limit assumed
CW paths                                repeated slashes tolerated (``/v2//orders``)        CWSDK ``Order::getOrder``
CW postbacks                            ``STOCK`` (``priceRangeLabel`` ranges such as       CWSDK ``Client::handle``; CWFW stock handler,
                                        ``1-9``, ``10+``), ``PREORDER`` (``orderId``),       CWSDK ``AssignedPreOrder``
                                        ``authHash`` = sha256(id + signature)
CW errors                               ``{status,code,message,...}``; 10002 balance,       CWSDK ``examples``; CWFW ``Errors.php``
                                        20001 not in price list, 40002 quantity
Both: faults                            knobs ``latency_ms``, ``error_rate`` (503),         assumed (test staging)
                                        ``timeout`` (hang, then processed),
                                        ``crash_after_charge`` (processed, connection
                                        dropped), ``drop_before_charge`` (dropped, never
                                        processed), ``fail_lookups`` (order searches 503)
======================================  ==================================================  ====================================================
"""

from keyshop.simulators.server import (
    PROVIDERS,
    SimulatorServer,
    build_app,
    default_knobs,
    parse_knob_assignments,
    run_simulators,
)
from keyshop.simulators.state import Knobs

__all__ = [
    "PROVIDERS",
    "Knobs",
    "SimulatorServer",
    "build_app",
    "default_knobs",
    "parse_knob_assignments",
    "run_simulators",
]
