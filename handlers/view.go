package handlers

import (
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"

	"github.com/b24apps/leadcontacts/secret"
)

// listView is the contact list as the tab last showed it. The tab's forms
// carry it back next to the page context, so a page that reports a failed
// removal or undo still shows the lead's header and its list, and the
// next steps, without asking the portal again: a click costs exactly one
// portal request (plus one refresh), never a second read for the page.
//
// It travels in the page rather than in the frame session so that no
// contact name is ever stored on the server, and so that each page gets
// back exactly what it showed. It is sealed like the page context (under
// a name and keys of its own, so neither can pass for the other) and bound
// to the session: a view from another tab is ignored. It is display only:
// the action trusts the page context alone, and the portal decides.
type listView struct {
	SID      string        `json:"s"`
	Total    int           `json:"t"`
	Contacts []viewContact `json:"c,omitempty"`
}

// viewContact is one row of a listView; the links are derived again from
// the id and the portal.
type viewContact struct {
	ID      int64  `json:"i"`
	Name    string `json:"n,omitempty"` // empty: listed by number
	Post    string `json:"p,omitempty"`
	Primary bool   `json:"m,omitempty"`
}

const (
	// viewName is bound into the view's MAC (see contextName).
	viewName = "lead-tab-view"
	// maxViewLen caps a sealed view. Names are read for the first 50
	// contacts only, so a typical view is well under 2 KiB; a lead with
	// thousands of links gets no view (its failure page shows the header
	// without the list) rather than forms past the body limit.
	maxViewLen = 16 << 10
)

// newViewCodecs builds the view's codecs from the keyring: keys of their
// own purpose, the page context's lifetime, and a length limit above the
// 4096 bytes securecookie assumes for cookies.
func newViewCodecs(keys *secret.Keyring, ttl time.Duration) []securecookie.Codec {
	codecs := securecookie.CodecsFromPairs(keys.Pairs("page-view")...)
	for _, c := range codecs {
		sc := c.(*securecookie.SecureCookie)
		sc.MaxAge(int(ttl.Seconds()))
		sc.MaxLength(maxViewLen)
		sc.SetSerializer(securecookie.JSONEncoder{})
	}
	return codecs
}

// sealView seals what the page shows, for its forms; "" when the page
// shows no list or has no forms.
func (h *Handlers) sealView(c *gin.Context, page *tabPage) string {
	if !page.Loaded || page.Context == "" || page.sid == "" {
		return ""
	}
	v := listView{SID: page.sid, Total: page.Total}
	for _, cv := range page.Contacts {
		vc := viewContact{ID: cv.ID, Post: cv.Post, Primary: cv.Primary}
		if !cv.unnamed {
			vc.Name = cv.Name
		}
		v.Contacts = append(v.Contacts, vc)
	}
	enc, err := securecookie.EncodeMulti(viewName, v, h.viewCodecs...)
	if err != nil {
		// Too long, most likely: the page works without it.
		h.d.Logger.InfoContext(c.Request.Context(), "contact list not carried in the page", "contacts", len(v.Contacts), "err", err)
		return ""
	}
	return enc
}

// openView reads the view a form carried back; nil when there is none, or
// it does not verify, or it belongs to another session.
func (h *Handlers) openView(raw, sid string) *listView {
	if raw == "" || len(raw) > maxViewLen {
		return nil
	}
	var v listView
	if err := securecookie.DecodeMulti(viewName, raw, &v, h.viewCodecs...); err != nil || v.SID != sid || v.Total < len(v.Contacts) {
		return nil
	}
	return &v
}

// keepList turns an action's page into a failure page: the header and the
// list as the tab last showed them (when the page has no fresher list),
// and the next steps in the banner — back to the list always, and "Try
// again" when the caller set Retry.
func (a *action) keepList(page *tabPage) {
	page.Failed = true
	page.Reload = false
	if page.Loaded || a.view == nil {
		return
	}
	origin := portalOrigin(a.p)
	page.Loaded, page.Total, page.Contacts, page.Unnamed = true, a.view.Total, nil, 0
	for _, vc := range a.view.Contacts {
		cv := newContactView(a.loc, origin, vc.ID, vc.Name, vc.Post, vc.Primary)
		if cv.unnamed {
			page.Unnamed++
		}
		page.Contacts = append(page.Contacts, cv)
	}
}

// renderTab renders the tab ("tab") or the no-JS confirmation ("confirm")
// with the view its forms carry.
func (h *Handlers) renderTab(c *gin.Context, status int, name string, page tabPage) {
	page.View = h.sealView(c, &page)
	var data any = page
	if name == "confirm" {
		data = confirmPage{page}
	}
	h.render(c, status, name, data)
}
