package handlers

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/internal/reqid"
)

// recoverPanics replaces gin's Recovery, which dumps request headers
// (cookies included) in some modes. It logs the panic value and stack only.
func (h *Handlers) recoverPanics() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			h.d.Logger.ErrorContext(c.Request.Context(), "panic", "route", c.FullPath(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if c.Writer.Written() {
				c.Abort()
				return
			}
			c.Header("Content-Security-Policy", h.csp(""))
			c.AbortWithStatus(http.StatusInternalServerError)
		}()
		c.Next()
	}
}

// logRequests replaces gin's Logger, which prints the raw query string. It
// logs the route pattern, never the query, headers or body; a request that
// matched no route (404, 405) gets its path, which is all there is to go on.
// Probes that pass are not logged: they come every few seconds. Every
// request, probes included, is counted in the metrics by its pattern.
func (h *Handlers) logRequests() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route, status := c.FullPath(), c.Writer.Status()
		h.d.Metrics.ObserveRequest(c.Request.Method, route, status, time.Since(start))
		if status == http.StatusOK && (route == healthzPath || route == readyzPath) {
			return
		}
		attrs := []any{"method", c.Request.Method, "route", route}
		if route == "" {
			attrs = []any{"method", c.Request.Method, "route", "(no route)", "path", loggedPath(c.Request.URL.Path)}
		}
		// The client's address: the peer's, or what a trusted proxy says
		// in X-Forwarded-For (TRUSTED_PROXIES); nobody else is believed.
		attrs = append(attrs, "client", c.ClientIP())
		h.d.Logger.InfoContext(c.Request.Context(), "http", append(attrs,
			"status", status, "bytes", c.Writer.Size(), "duration_ms", time.Since(start).Milliseconds())...)
	}
}

// loggedPath bounds a path anyone can send to what a log line should
// carry; the query never gets here.
func loggedPath(p string) string {
	const limit = 256
	if len(p) > limit {
		p = p[:limit] + "…"
	}
	return strings.ToValidUTF8(p, "�")
}

// securityHeaders sets the headers every response carries. There is
// deliberately no X-Frame-Options: the pages must be framed by the portal,
// and CSP frame-ancestors (set per page) decides by whom.
func (h *Handlers) securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("X-Content-Type-Options", "nosniff")
		c.Header("Referrer-Policy", "no-referrer")
		if h.secure {
			c.Header("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		c.Next()
	}
}

// crossOrigin applies Go's Fetch-Metadata CSRF protection to every
// state-changing request, except the exact routes Bitrix24 itself POSTs to
// from the portal's pages or its servers; those are authenticated by
// stored state (application token, verified OAuth answers) instead.
func (h *Handlers) crossOrigin(exempt ...string) gin.HandlerFunc {
	cop := http.NewCrossOriginProtection()
	for _, p := range exempt {
		cop.AddInsecureBypassPattern("POST " + p)
	}
	return func(c *gin.Context) {
		if err := cop.Check(c.Request); err != nil {
			h.page(func(*gin.Context) error {
				return fail(http.StatusForbidden, "error.forbidden_action", err)
			})(c)
			c.Abort()
			return
		}
		c.Next()
	}
}

// formBody caps the body and parses it as a URL-encoded form, the only
// encoding Bitrix24 uses for frames and events. Anything else is refused
// before a byte more is read.
func (h *Handlers) formBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
		if mt != "application/x-www-form-urlencoded" {
			h.page(func(*gin.Context) error {
				return fail(http.StatusUnsupportedMediaType, "error.bad_request", fmt.Errorf("content type %q", mt))
			})(c)
			c.Abort()
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		if err := c.Request.ParseForm(); err != nil {
			status, key := http.StatusBadRequest, "error.bad_request"
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				status, key = http.StatusRequestEntityTooLarge, "error.too_large"
			}
			h.page(func(*gin.Context) error { return fail(status, key, err) })(c)
			c.Abort()
			return
		}
		c.Next()
	}
}

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
