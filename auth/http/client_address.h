// Who a request comes from: the peer, or behind trusted proxies the address X-Forwarded-For names.
#pragma once

#include "auth/address_set.h"

#include <httplib.h>

#include <string>

namespace latch::http {

// The client: the peer, unless the peer is a trusted proxy; then, walking X-Forwarded-For from
// the right, the first address that is not one of the trusted proxies. Every X-Forwarded-For
// line counts, in order, as one list (RFC 9110 5.3): a proxy that adds a line of its own
// instead of appending is read as one that appends. Anything left of the client's address was
// written by the client and proves nothing; an entry that is not an address ends the walk at
// the last trusted hop.
std::string client_address(const httplib::Request &req, const AddressSet &trusted);

} // namespace latch::http
