package handlers

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/static"
)

// base is embedded in every page's data.
type base struct {
	Loc    *lang.Localizer
	JSURL  string
	Reload bool // ask Bitrix24 to refresh the lead card around the frame
	assets *static.Assets
}

// T renders a message in the page's language.
func (b base) T(id string, kv ...any) string { return b.Loc.T(id, kv...) }

// N renders a plural message in the page's language.
func (b base) N(id string, n int, kv ...any) string { return b.Loc.N(id, n, kv...) }

// Asset returns the content-hashed URL path of a static file.
func (b base) Asset(name string) string { return b.assets.Path(name) }

func (h *Handlers) base(loc *lang.Localizer) base {
	return base{Loc: loc, JSURL: h.cfg.JSURL, assets: h.d.Assets}
}

// originKey is the gin context key holding the verified portal origin that
// may frame the response.
const originKey = "frame-origin"

// render executes a page into a buffer first, so a template error becomes
// a clean 500 instead of half a page, then writes it with the headers every
// page needs.
func (h *Handlers) render(c *gin.Context, status int, page string, data any) {
	// Page buffers are kept between requests: a page is 10-20 KB, which
	// grown from nothing was most of a click's allocations.
	buf, _ := h.buffers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = bytes.NewBuffer(make([]byte, 0, 32<<10))
	}
	defer func() {
		if buf.Cap() <= 1<<20 { // a freak page's buffer is not kept
			buf.Reset()
			h.buffers.Put(buf)
		}
	}()
	if err := h.pages[page].ExecuteTemplate(buf, "layout", data); err != nil {
		h.d.Logger.ErrorContext(c.Request.Context(), "render page", "page", page, "err", err)
		c.Header("Content-Security-Policy", h.csp(""))
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	origin, _ := c.Get(originKey)
	o, _ := origin.(string)
	c.Header("Content-Security-Policy", h.csp(o))
	// Pages carry a page context (a bearer of the user's session): never
	// store them in any cache.
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// csp builds the page policy. frame-ancestors is the exact origin of the
// verified portal, or 'none' when the request was not verified: a stranger
// can never frame anything actionable. Scripts come only from the app and
// the BX24 library; no inline script exists, so none is allowed.
func (h *Handlers) csp(frameOrigin string) string {
	fa := "'none'"
	if frameOrigin != "" {
		fa = frameOrigin
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' " + h.jsOrigin,
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self'",
		"form-action 'self'",
		"base-uri 'none'",
		"object-src 'none'",
		"frame-ancestors " + fa,
	}, "; ")
}
