package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"

	"github.com/b24apps/leadcontacts/store"
)

// pageContext is what the tab's form carries back: a signed, encrypted,
// expiring reference to the server-side session. It is the only thing the
// action trusts, so the lead and user come from it, not from form fields.
// Because it travels in the form body, no cookie is needed (Safari and any
// browser blocking third-party cookies work), and a page on another site
// cannot make the browser send it: it is also the CSRF token.
type pageContext struct {
	SID      string `json:"s"`
	MemberID string `json:"m"`
	LeadID   int64  `json:"l"`
	UserID   int64  `json:"u"`
	// BID is the browser id of the optional __Host- cookie as it was when
	// the page was rendered; see browserID.
	BID string `json:"b"`
	// Via is the surface the frame opened on (store.ViaTab, ViaList): its
	// routes are the only ones that accept the context, and the history
	// records it. Signed, so no form field can claim another origin;
	// empty in contexts signed before it existed, which were the tab's.
	Via string `json:"v,omitempty"`
}

// contextName is bound into the MAC, so a value minted for another purpose
// (the cookie) can never pass as a page context.
const contextName = "lead-tab-context"

// cookieName is the optional browser-binding cookie. The __Host- prefix
// makes browsers refuse it unless Secure, Path=/ and without Domain.
const cookieName = "__Host-lcs"

// errContextExpired marks a page context past its lifetime.
var errContextExpired = errors.New("page context expired")

// setPageContext signs the page context into the page, bound to the
// browser id bid (see browserID; "" when the browser takes no cookie) and
// to the surface on, whose routes the page's forms post to.
func (h *Handlers) setPageContext(page *tabPage, s *store.Session, bid string, on surface) error {
	pc := pageContext{SID: s.ID, MemberID: s.MemberID, LeadID: s.LeadID, UserID: s.UserID, BID: bid, Via: on.via}
	enc, err := securecookie.EncodeMulti(contextName, pc, h.ctxCodecs...)
	if err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	page.Context, page.sid = enc, s.ID
	page.Action = on.path + "/remove?LANG=" + url.QueryEscape(s.Lang)
	return nil
}

// decodePageContext checks the MAC and the age of a posted page context.
func (h *Handlers) decodePageContext(v string) (pageContext, error) {
	var pc pageContext
	if v == "" || len(v) > 4096 {
		return pc, errors.New("no page context")
	}
	if err := securecookie.DecodeMulti(contextName, v, &pc, h.ctxCodecs...); err != nil {
		if strings.Contains(err.Error(), "expired timestamp") {
			return pc, errContextExpired
		}
		return pc, err
	}
	if pc.SID == "" || pc.MemberID == "" || pc.LeadID <= 0 {
		return pc, errors.New("incomplete page context")
	}
	return pc, nil
}

// browserID returns the id in the browser-binding cookie, minting and
// setting one when there is none (or it does not verify). The cookie is a
// second binding only: when the browser blocks it, the page context alone
// decides, but when it is present it must match the context's.
func (h *Handlers) browserID(c *gin.Context) string {
	sess, err := h.cookies.Get(c.Request, cookieName)
	if err == nil {
		if bid, ok := sess.Values["b"].(string); ok && bid != "" {
			return bid
		}
	}
	// A tampered or foreign cookie yields an error and a fresh session:
	// it is treated as absent, never as a server error.
	sess, _ = h.cookies.New(c.Request, cookieName)
	bid := randomID()
	sess.Values["b"] = bid
	if err := sess.Save(c.Request, c.Writer); err != nil {
		h.d.Logger.WarnContext(c.Request.Context(), "set browser cookie", "err", err)
		return ""
	}
	return bid
}

// checkBrowser enforces the cookie binding when the cookie is present:
// bid is the browser id the page's context was signed with.
func (h *Handlers) checkBrowser(c *gin.Context, bid string) error {
	if _, err := c.Request.Cookie(cookieName); err != nil {
		return nil // blocked third-party cookies: the context alone decides
	}
	sess, err := h.cookies.Get(c.Request, cookieName)
	if err != nil {
		return nil // unverifiable cookie: treated as absent
	}
	have, _ := sess.Values["b"].(string)
	if bid != "" && have != "" && have != bid {
		return errors.New("browser cookie does not match the page context")
	}
	return nil
}
