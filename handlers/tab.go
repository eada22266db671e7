package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/store"
)

// tabPage is the data of tab.html.
type tabPage struct {
	base
	LeadID    int64
	LeadTitle string
	Loaded    bool // the contact list was read
	Total     int
	Contacts  []contactView
	Unnamed   int // contacts listed by number: their names were not read
	Banner    *banner
	Context   string // signed page context; empty hides the form
	View      string // sealed listView for the forms (see view.go)
	Action    string
	CanRemove bool
	Retry     bool
	Undo      bool // the success banner offers Undo (a snapshot is stored)
	// Failed marks a page that reports a failed action: the banner offers
	// the next steps, and the list is shown as it was, without the button.
	Failed bool
	sid    string // the session the page context names
}

type contactView struct {
	ID      int64
	Name    string
	Post    string
	Primary bool
	Path    string // portal path for BX24.openPath
	URL     string // full portal URL, the no-JS fallback
	unnamed bool   // Name is the fallback: the name was not read
}

// newContactView is one row of the list; a contact without a name is
// listed by number.
func newContactView(loc *lang.Localizer, origin string, id int64, name, post string, primary bool) contactView {
	v := contactView{ID: id, Name: name, Post: post, Primary: primary}
	v.Path = fmt.Sprintf("/crm/contact/details/%d/", id)
	v.URL = origin + v.Path
	if v.Name == "" {
		v.Name, v.unnamed = loc.T("tab.contact_fallback", "ID", id), true
	}
	return v
}

// banner is a result or error message at the top of the tab.
type banner struct {
	Kind  string // success, danger, warning
	Title string
	Text  string
	Code  string
}

// leadItem is one row of crm.lead.contact.items.get.
type leadItem struct {
	ContactID bitrix24.ID   `json:"CONTACT_ID"`
	Sort      int           `json:"SORT"`
	RoleID    bitrix24.ID   `json:"ROLE_ID"`
	Primary   bitrix24.Bool `json:"IS_PRIMARY"`
}

type contactFields struct {
	ID         bitrix24.ID `json:"ID"`
	Name       string      `json:"NAME"`
	SecondName string      `json:"SECOND_NAME"`
	LastName   string      `json:"LAST_NAME"`
	Post       string      `json:"POST"`
}

// surface is one placement whose frame opens the lead page, and the family
// of routes under its handler path that every later page of that frame
// (confirm, remove, undo, view) posts to. The accepted placement decides
// the family, and the family is signed into the page context (via), so
// the history says where an action came from and a page of one family
// is never accepted by another.
type surface struct {
	placement string // the PLACEMENT its frame must carry
	path      string // its handler path in app.json
	via       string // store.ViaTab or store.ViaList
	wrongKey  string // the message for a frame of another placement
}

// leadSurfaces lists the surfaces app.json binds: the lead tab, which the
// app cannot do without, and the lead list's row menu when declared.
func leadSurfaces(m *manifest.Manifest) ([]surface, error) {
	tab, ok := m.Placement(placementLeadTab)
	if !ok {
		return nil, fmt.Errorf("handlers: app.json binds no %s placement", placementLeadTab)
	}
	out := []surface{{placement: placementLeadTab, path: tab.Handler, via: store.ViaTab, wrongKey: "error.bad_placement"}}
	if list, ok := m.Placement(placementLeadListMenu); ok {
		if list.Handler == tab.Handler {
			return nil, fmt.Errorf("handlers: %s and %s share the handler %s", placementLeadTab, placementLeadListMenu, tab.Handler)
		}
		out = append(out, surface{placement: placementLeadListMenu, path: list.Handler, via: store.ViaList, wrongKey: "error.bad_placement_list"})
	}
	return out, nil
}

// surfaceVia returns the surface of a page context's via; "" (a context
// signed before via existed) is the tab's.
func (h *Handlers) surfaceVia(via string) (surface, bool) {
	if via == "" {
		via = store.ViaTab
	}
	for _, s := range h.surfaces {
		if s.via == via {
			return s, true
		}
	}
	return surface{}, false
}

// leadFrame serves the frame of a surface: the lead card's tab
// (CRM_LEAD_DETAIL_TAB) or the slider of the lead list's row menu
// (CRM_LEAD_LIST_MENU), which open the same page. It refuses any other
// PLACEMENT, and authenticates the frame against stored state (known
// member_id, matching application token, AUTH_ID accepted by the stored
// portal endpoint — never the posted DOMAIN or SERVER_ENDPOINT), then
// reads the lead and its contacts in the same batch: one round trip to
// the portal.
func (h *Handlers) leadFrame(s surface) func(c *gin.Context) error {
	return func(c *gin.Context) error { return h.openLead(c, s) }
}

func (h *Handlers) openLead(c *gin.Context, s surface) error {
	f, err := ParseFrame(c.Request.URL.Query(), c.Request.PostForm)
	if err != nil {
		return fail(http.StatusBadRequest, "error.bad_request", err)
	}
	if f.Placement != s.placement {
		return fail(http.StatusBadRequest, s.wrongKey, fmt.Errorf("placement %q at %s", f.Placement, s.path))
	}
	leadID, err := ParsePlacementOptions(f.PlacementOptions)
	if err != nil {
		return fail(http.StatusBadRequest, "error.bad_lead", err)
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	p, res, me, err := h.verifyFrame(ctx, f, tabCommands(leadID))
	if err != nil {
		return err
	}
	// From here on the request is verified: the portal may frame the answer.
	c.Set(originKey, portalOrigin(p))
	loc := h.d.Lang.For(f.Lang)
	page := tabPage{base: h.base(loc), LeadID: leadID}
	if _, err := h.fillList(&page, loc, p, res); err != nil {
		page.Loaded = false
		page.Banner = h.errorBanner(loc, err)
		h.render(c, upstreamStatus(err), "tab", page)
		return nil
	}
	sess := &store.Session{
		ID: randomID(), MemberID: p.MemberID, UserID: int64(me.ID), LeadID: leadID,
		LeadTitle: page.LeadTitle, Lang: loc.Code(), AccessToken: f.AuthID, RefreshToken: f.RefreshID,
		UserName: profileName(res), ContactNames: contactNames(res), // for the history
		CreatedAt: h.now(), ExpiresAt: h.now().Add(h.cfg.SessionTTL),
	}
	if err := h.d.Store.CreateSession(ctx, sess); err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	if err := h.setPageContext(&page, sess, h.browserID(c), s); err != nil {
		return err
	}
	h.renderTab(c, http.StatusOK, "tab", page)
	return nil
}

// tabCommands is the one batch behind the tab, five commands: app.info
// and profile verify the token on the stored portal and name the user,
// then listCommands reads the lead, its links and the names.
func tabCommands(leadID int64) []bitrix24.Cmd {
	return append([]bitrix24.Cmd{
		{Key: "app", Method: "app.info"},
		{Key: "me", Method: "profile"},
	}, listCommands(leadID)...)
}

// contactViews lists the links in the portal's order (primary first, then
// by SORT, as Bitrix24 returns them), named from the batch's crm.contact.list
// page. A link without a name there (past the first page of 50, or a
// contact the user may not read) is listed by number and counted in
// unnamed. Names are matched by id, so whatever else the list returns
// (Bitrix24 does not say what an empty "@ID" filter selects) never shows.
func contactViews(loc *lang.Localizer, res *bitrix24.BatchResult, items []leadItem, origin string) (out []contactView, unnamed int) {
	var found []contactFields
	_ = res.Decode("names", &found) // no names is not an error: ids remain
	names := make(map[int64]contactFields, len(found))
	for _, cf := range found {
		names[int64(cf.ID)] = cf
	}
	for _, it := range items {
		if it.ContactID <= 0 {
			continue
		}
		var name, post string
		if cf, ok := names[int64(it.ContactID)]; ok {
			name = fullName(cf.Name, cf.SecondName, cf.LastName)
			post = strings.TrimSpace(cf.Post)
		}
		v := newContactView(loc, origin, int64(it.ContactID), name, post, bool(it.Primary))
		if v.unnamed {
			unnamed++
		}
		out = append(out, v)
	}
	return out, unnamed
}

// activePortal loads an installed portal or refuses the request.
func (h *Handlers) activePortal(ctx context.Context, memberID string) (*store.Portal, error) {
	p, err := h.d.Store.Portal(ctx, memberID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, fail(http.StatusForbidden, "error.not_installed", fmt.Errorf("unknown member %q", memberID))
	case err != nil:
		return nil, fail(http.StatusInternalServerError, "error.internal", err)
	case !p.Active():
		return nil, fail(http.StatusForbidden, "error.not_installed", fmt.Errorf("member %q uninstalled", memberID))
	}
	return p, nil
}

// errorBanner explains an upstream failure in the user's language.
func (h *Handlers) errorBanner(loc *lang.Localizer, err error) *banner {
	return &banner{Kind: "danger", Title: loc.T("result.error_title"), Text: loc.T(upstreamKey(err)), Code: upstreamCode(err)}
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// Initials are the avatar's letters: the first letter of the first and
// the last word of the name (one word: its first letter), as Bitrix24's
// avatars show a person without a photo.
func (v contactView) Initials() string {
	words := strings.Fields(v.Name)
	if len(words) == 0 {
		return ""
	}
	first := func(w string) string {
		for _, r := range w {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				return string(unicode.ToUpper(r))
			}
		}
		return ""
	}
	out := first(words[0])
	if len(words) > 1 {
		out += first(words[len(words)-1])
	}
	return out
}
