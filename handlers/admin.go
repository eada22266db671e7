package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// HistoryStore is what Undo and the admins' page need from persistence.
type HistoryStore interface {
	SaveUndo(ctx context.Context, u *store.UndoSnapshot) error
	TakeUndo(ctx context.Context, sessionID string, now time.Time) (*store.UndoSnapshot, error)
	AddHistory(ctx context.Context, e *store.HistoryEntry) error
	History(ctx context.Context, memberID string, limit int) ([]store.HistoryEntry, error)
	DeleteHistory(ctx context.Context, memberID string) (int64, error)
}

// DefaultHistoryRetention is how long the history is kept unless the
// configuration says otherwise.
const DefaultHistoryRetention = 90 * 24 * time.Hour

// historyShown is how many entries the admins' page lists.
const historyShown = 50

// adminContextName binds the admins' page context into its MAC, so a lead
// tab's context can never pass for it, nor the other way round.
const adminContextName = "app-admin-context"

// adminContext is what the admins' re-bind form carries back: a signed,
// encrypted, expiring reference to a server-side session holding the
// admin's own tokens (LeadID 0: it is no lead's).
type adminContext struct {
	SID      string `json:"s"`
	MemberID string `json:"m"`
	UserID   int64  `json:"u"`
	// BID binds the context to the browser, as the tab's page context
	// is bound (see browserID).
	BID string `json:"b,omitempty"`
}

// adminPage is the data of app.html.
type adminPage struct {
	base
	Admin         bool
	Installed     bool   // app.info INSTALLED
	Domain        string // the verified portal host
	InstalledAt   moment
	Zone          string // the time zone of every time on the page, named
	Placements    []placementRow
	PlacementsOK  bool // every placement of app.json is bound to the app's URL
	History       []historyRow
	NamesHint     bool // users are listed by number for want of user_brief
	RetentionDays int
	Banner        *banner
	Context       string // signed admin context; empty hides the re-bind form
	RebindAction  string
	Bulk          *bulkSection // the bulk run card; nil hides it
	TabTitle      string
}

// moment is a time as the page shows it, in the admin's zone: Text for
// people, ISO for the datetime attribute.
type moment struct{ Text, ISO string }

// momentIn is t as the page shows it in zone: to the minute, as
// Bitrix24's own lists show times.
func momentIn(t time.Time, zone *time.Location) moment {
	t = t.In(zone)
	return moment{Text: t.Format("2006-01-02 15:04"), ISO: t.Format(time.RFC3339)}
}

type placementRow struct {
	Code, Title, Handler string
	OK                   bool // bound to the URL app.json asks for
	// Unavailable marks an automation rule the portal does not offer the
	// app (no bizproc scope, no automation on the plan): not a fault.
	Unavailable bool
}

// historyRow is one entry as an administrator reads it: the lead by its
// title, what happened in words, the contacts and the user by name (by
// number where no name was kept or could be read), the time in the
// admin's zone.
type historyRow struct {
	At        moment
	LeadID    int64
	LeadTitle string // "" when unknown: the page says "Lead #id"
	Path      string // portal path for BX24.openPath
	URL       string // full portal URL, the no-JS fallback
	UserID    int64
	UserName  string // "" when unknown: the page says "user #id"
	Summary   string // what happened, worded per outcome (catalogue text)
	Via       string // where it came from, "" for the tab (catalogue text)
	Contacts  []historyContact
	More      int    // contacts not listed
	Outcome   string // the badge's word (catalogue text)
	Kind      string // success, danger, warning: the badge colour
	Code      string
}

// historyContact is a contact of an entry: its name, or its id when the
// name is unknown.
type historyContact struct {
	ID   int64
	Name string
}

// historyContactsShown is how many contacts a row names; the rest are
// counted ("and 7 more"), so a lead with dozens of contacts keeps the
// page readable.
const historyContactsShown = 10

// appPage serves the app's main page, which Bitrix24 frames from the
// portal's left menu (PLACEMENT=DEFAULT). The frame is authenticated like
// the lead tab; one batch then proves the token works (app.info), says
// whether the user is an administrator (profile ADMIN) and lists the bound
// placements (placement.get, which Bitrix24 answers for admins only); see
// adminCommands.
func (h *Handlers) appPage(c *gin.Context) error {
	f, err := ParseFrame(c.Request.URL.Query(), c.Request.PostForm)
	if err != nil {
		return fail(http.StatusBadRequest, "error.bad_request", err)
	}
	if f.Placement != "" && f.Placement != "DEFAULT" {
		return fail(http.StatusBadRequest, "error.bad_request", fmt.Errorf("placement %q on the app page", f.Placement))
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	var entries []store.HistoryEntry
	p, res, me, err := h.verifyFrameWith(ctx, f, func(p *store.Portal) ([]bitrix24.Cmd, error) {
		// The history is read before the batch, so the batch can name
		// the users it lacks names for: no second round trip.
		var err error
		if entries, err = h.d.Store.History(ctx, p.MemberID, historyShown); err != nil {
			return nil, fail(http.StatusInternalServerError, "error.internal", err)
		}
		return pageCommands(entries, f.Scope), nil
	})
	if err != nil {
		return err
	}
	c.Set(originKey, portalOrigin(p))
	loc := h.d.Lang.For(f.Lang)
	page := adminPage{base: h.base(loc), TabTitle: placementTitle(h.cfg.Manifest, loc.Code())}
	if !me.Admin {
		h.render(c, http.StatusOK, "app", page)
		return nil
	}
	var prof struct {
		Name     string `json:"NAME"`
		LastName string `json:"LAST_NAME"`
	}
	_ = res.Decode("me", &prof) // a name is a nicety: the history falls back to the id
	sess := &store.Session{
		ID: randomID(), MemberID: p.MemberID, UserID: int64(me.ID), Lang: loc.Code(),
		UserName:    fullName(prof.Name, "", prof.LastName),
		AccessToken: f.AuthID, RefreshToken: f.RefreshID,
		CreatedAt: h.now(), ExpiresAt: h.now().Add(h.cfg.SessionTTL),
	}
	if err := h.d.Store.CreateSession(ctx, sess); err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	if err := h.fillAdmin(&page, loc, p, sess, res, h.browserID(c), entries, f.Scope); err != nil {
		return err
	}
	h.fillBulk(ctx, &page, loc, p, res, store.BulkFilter{})
	if missing := missingScopes(f.Scope, h.cfg.Manifest.Required()); len(missing) > 0 {
		// The scopes granted now (APPLICATION_SCOPE), which an update of
		// the app's permissions may have changed since the install.
		pr := scopeProblem(errors.New("app page"), missing)
		page.Banner = &banner{Kind: "danger", Title: loc.T("install.failed_title"), Text: pr.text(loc), Code: pr.code}
	}
	h.render(c, http.StatusOK, "app", page)
	return nil
}

// adminCommands is the admins' page's one batch: app.info proves the
// token, profile says whether the user is an administrator and in which
// time zone they read, placement.get lists the bindings and, when history
// entries lack the acting user's name (entries written before names were
// kept), user.get names those users by id (unnamedUsers).
func adminCommands(unnamed []int64) []bitrix24.Cmd {
	cmds := []bitrix24.Cmd{
		{Key: "app", Method: "app.info"},
		{Key: "me", Method: "profile"},
		{Key: "placements", Method: "placement.get"},
		// The automation rule's registration: Bitrix24 drops an app's
		// robots on an update, and a re-bind brings them back.
		{Key: "robots", Method: "bizproc.robot.list"},
	}
	if len(unnamed) > 0 {
		q := url.Values{}
		for i, id := range unnamed {
			q.Set(fmt.Sprintf("FILTER[ID][%d]", i), strconv.FormatInt(id, 10))
		}
		cmds = append(cmds, bitrix24.Cmd{Key: "users", Method: "user.get", Params: q})
	}
	return cmds
}

// fillAdmin puts the install status, the bindings and the history on the
// admins' page, and signs the context its re-bind form carries. granted
// is the app's scope list as Bitrix24 last said it ("" when unknown).
func (h *Handlers) fillAdmin(page *adminPage, loc *lang.Localizer, p *store.Portal, sess *store.Session, res *bitrix24.BatchResult, bid string, entries []store.HistoryEntry, granted string) error {
	page.Admin = true
	zone, zoneName := adminZone(res)
	page.Domain, page.InstalledAt, page.Zone = p.Domain, momentIn(p.InstalledAt, zone), zoneName
	page.RetentionDays = int(h.cfg.HistoryRetention / (24 * time.Hour))
	page.TabTitle = placementTitle(h.cfg.Manifest, loc.Code())
	var app struct {
		Installed bool `json:"INSTALLED"`
	}
	if err := res.Decode("app", &app); err == nil {
		page.Installed = app.Installed
	}
	var bound []struct {
		binding
		Title string `json:"title"`
	}
	if err := res.Decode("placements", &bound); err != nil {
		page.Banner = h.errorBanner(loc, err)
		page.Banner.Title = loc.T("app.placements_error")
	}
	page.PlacementsOK = true
	for _, want := range h.cfg.Manifest.Placements {
		url := manifest.Absolute(h.cfg.BaseURL, want.Handler)
		found := false
		for _, b := range bound {
			if strings.EqualFold(b.Placement, want.Placement) {
				ok := b.Handler == url
				found = found || ok
				page.Placements = append(page.Placements, placementRow{Code: b.Placement, Title: b.Title, Handler: b.Handler, OK: ok})
			}
		}
		if !found {
			page.PlacementsOK = false
			page.Placements = append(page.Placements, placementRow{Code: want.Placement, Title: titleIn(want, loc.Code())})
		}
	}
	var robots []string
	robotsErr := res.Decode("robots", &robots)
	for _, rb := range h.cfg.Manifest.Robots {
		row := placementRow{Code: rb.Code, Title: loc.T("install.robot", "Title", textIn(rb.Name, loc.Code()))}
		switch {
		case robotsErr != nil:
			row.Unavailable = true
		case slices.Contains(robots, rb.Code):
			row.OK = true
		default:
			page.PlacementsOK = false
		}
		page.Placements = append(page.Placements, row)
	}
	names, refused := userNames(res)
	origin := portalOrigin(p)
	for _, e := range entries {
		r := readableRow(loc, e, zone, origin)
		if r.UserName == "" {
			r.UserName = names[e.UserID]
		}
		// Say why users are listed by number when the app lacks the
		// scope that names them (as Bitrix24 granted it, or answered).
		page.NamesHint = page.NamesHint || (r.UserName == "" && (refused || !namesUsers(granted)))
		page.History = append(page.History, r)
	}
	enc, err := securecookie.EncodeMulti(adminContextName, adminContext{SID: sess.ID, MemberID: sess.MemberID, UserID: sess.UserID, BID: bid}, h.ctxCodecs...)
	if err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	page.Context = enc
	page.RebindAction = h.cfg.Manifest.Handler + "/rebind?LANG=" + url.QueryEscape(loc.Code())
	return nil
}

// withAdmin adapts an action posted from the admins' page: adminAction
// authenticates it, and fn does the work within the request's deadline.
func (h *Handlers) withAdmin(fn func(ctx context.Context, c *gin.Context, sess *store.Session, p *store.Portal) error) func(*gin.Context) error {
	return func(c *gin.Context) error {
		ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
		defer cancel()
		sess, p, err := h.adminAction(ctx, c)
		if err != nil {
			return err
		}
		return fn(ctx, c, sess, p)
	}
}

// adminAction is the prologue of every action posted from the admins'
// page: the signed admin context, bound to this browser, naming a live
// admin session of an installed portal. It sets the frame's origin.
func (h *Handlers) adminAction(ctx context.Context, c *gin.Context) (*store.Session, *store.Portal, error) {
	var ac adminContext
	v := c.Request.PostForm.Get("ctx")
	if v == "" || len(v) > 4096 {
		return nil, nil, fail(http.StatusForbidden, "error.forbidden_action", errors.New("no admin context"))
	}
	if err := securecookie.DecodeMulti(adminContextName, v, &ac, h.ctxCodecs...); err != nil {
		if strings.Contains(err.Error(), "expired timestamp") {
			return nil, nil, fail(http.StatusUnauthorized, "error.session_expired_app", err)
		}
		return nil, nil, fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	if err := h.checkBrowser(c, ac.BID); err != nil {
		return nil, nil, fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	sess, err := h.d.Store.Session(ctx, ac.SID, h.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fail(http.StatusUnauthorized, "error.session_expired_app", err)
	}
	if err != nil {
		return nil, nil, fail(http.StatusInternalServerError, "error.internal", err)
	}
	if sess.MemberID != ac.MemberID || sess.UserID != ac.UserID || sess.LeadID != 0 {
		return nil, nil, fail(http.StatusForbidden, "error.forbidden_action", errors.New("admin context does not match its session"))
	}
	p, err := h.activePortal(ctx, sess.MemberID)
	if err != nil {
		return nil, nil, err
	}
	if err := notReported(p); err != nil {
		return nil, nil, err
	}
	c.Set(originKey, portalOrigin(p))
	return sess, p, nil
}

// rebind binds app.json's placements and events again, from the admins'
// page, with the clicking admin's own token (Bitrix24 lets only admins
// bind; an expired token is refreshed as for a removal). It reuses the
// installer's bind, so what is right is kept and what is stale replaced.
func (h *Handlers) rebind(ctx context.Context, c *gin.Context, sess *store.Session, p *store.Portal) error {
	loc := h.d.Lang.For(sess.Lang)
	page := adminPage{base: h.base(loc)}

	entries, err := h.d.Store.History(ctx, p.MemberID, historyShown)
	if err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	var res *bitrix24.BatchResult
	err = h.asUser(ctx, sess, p, func(endpoint string, token secret.String) error {
		asAdmin := *p
		asAdmin.AccessToken, asAdmin.InstalledBy, asAdmin.RESTEndpoint = token, sess.UserID, endpoint
		plan, err := h.readSetup(ctx, &asAdmin)
		if err != nil {
			return err
		}
		if _, err := h.bind(ctx, &asAdmin, plan, loc); err != nil {
			return err
		}
		// The scopes granted now are unknown here (the stored ones date
		// from the install): user.get is tried, and its answer decides.
		res, err = h.d.REST.Batch(ctx, endpoint, token, false, pageCommands(entries, ""))
		return err
	})
	if err != nil {
		h.adminFailed(c, page, loc, loc.T("app.rebind_failed"), err)
		return nil
	}
	if err := h.fillAdmin(&page, loc, p, sess, res, h.browserID(c), entries, ""); err != nil {
		return err
	}
	h.fillBulk(ctx, &page, loc, p, res, store.BulkFilter{})
	if page.Banner == nil {
		page.Banner = &banner{Kind: "success", Title: loc.T("app.rebind_done")}
	}
	h.d.Logger.InfoContext(ctx, "placements re-bound", "member", p.MemberID, "user", sess.UserID)
	h.render(c, http.StatusOK, "app", page)
	return nil
}
