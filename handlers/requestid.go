package handlers

import (
	"net"
	"net/http"
	"net/netip"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/internal/reqid"
)

// requestID gives every inbound request one id, puts it in the request's
// context (the logger stamps it on every line the request causes) and
// echoes it as X-Request-Id. An id in the request is taken only from a
// trusted proxy and only when it is well formed; anyone else could plant
// ids to confuse an investigation, so they get a fresh one.
func (h *Handlers) requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(reqid.Header)
		if !reqid.Valid(id) || !h.fromTrustedProxy(c.Request) {
			id = reqid.New()
		}
		c.Request = c.Request.WithContext(reqid.With(c.Request.Context(), id))
		c.Header(reqid.Header, id)
		c.Next()
	}
}

// fromTrustedProxy reports whether the request's peer (not any header) is
// one of TRUSTED_PROXIES.
func (h *Handlers) fromTrustedProxy(r *http.Request) bool {
	if len(h.proxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range h.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseProxies turns TRUSTED_PROXIES entries (CIDRs or single addresses)
// into prefixes.
func parseProxies(entries []string) ([]netip.Prefix, bool) {
	var out []netip.Prefix
	for _, s := range entries {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, false
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, true
}
