package handlers

import (
	"net/http"
	"path"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/store"
)

// landingPage is the data of index.html: what the app is and how to
// install it, for anyone who opens one of its addresses in a browser.
type landingPage struct {
	base
	TabTitle    string
	UndoMinutes int
}

// landing answers GET and HEAD on every address of the app: the root, the
// installer, the app's page, the tab and its actions, the event handlers.
// Bitrix24 only ever POSTs to them (and the vendor console checks them
// with HEAD, which gets 200 here), so a GET is a person who followed a
// link or typed the address: they get the app explained in their
// browser's language rather than "this address does not accept that kind
// of request". The page carries no page context and calls nothing.
func (h *Handlers) landing(c *gin.Context) error {
	loc := h.pageLang(c)
	b := h.base(loc)
	b.JSURL = "" // outside Bitrix24 there is no BX24 to talk to
	h.render(c, http.StatusOK, "index", landingPage{
		base:        b,
		TabTitle:    placementTitle(h.cfg.Manifest, loc.Code()),
		UndoMinutes: int(store.UndoTTL.Minutes()),
	})
	return nil
}

// pageLang is the language of a page the app renders without a session:
// the LANG Bitrix24 puts in the query of its frames and of every tab
// route, else the browser's Accept-Language (a page opened outside
// Bitrix24), else English.
func (h *Handlers) pageLang(c *gin.Context) *lang.Localizer {
	if code := c.Query("LANG"); h.d.Lang.Known(code) {
		return h.d.Lang.For(code)
	}
	c.Header("Vary", "Accept-Language")
	return h.d.Lang.For(h.d.Lang.Match(c.GetHeader("Accept-Language")))
}

// favicon answers /favicon.ico, which browsers ask for on their own
// (pages link the content-hashed SVG): the same icon, cached for a day
// because this name never changes.
func (h *Handlers) favicon(c *gin.Context) {
	a, ok := h.d.Assets.Lookup(path.Base(h.d.Assets.Path("favicon.svg")))
	if !ok {
		c.Status(http.StatusNotFound)
		return
	}
	c.Header("Cache-Control", "public, max-age=86400")
	c.Data(http.StatusOK, a.ContentType, a.Body)
}
