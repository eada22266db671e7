package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// The lead tab's routes besides the removal itself. Every one is a POST
// from the app's own page carrying the signed page context, so the
// CrossOriginProtection middleware and the context's MAC both apply.
const (
	routeConfirm = "confirm" // the no-JS confirmation page
	routeView    = "view"    // the tab again, e.g. Cancel on that page
	routeUndo    = "undo"    // put back what the last removal took away
)

// Route returns the URL of one of the tab's sibling routes, carrying the
// page's language: a page rendered when the page context cannot be read
// (it expired) still speaks the user's language. It derives from Action
// (the removal route, set together with the page context), so every
// handler that renders the tab offers them without extra wiring.
func (p tabPage) Route(name string) string {
	path, _, _ := strings.Cut(p.Action, "?")
	return strings.TrimSuffix(path, "/remove") + "/" + name + "?LANG=" + url.QueryEscape(p.Loc.Code())
}

// UndoMinutes is how long the success banner's Undo stays valid.
func (p tabPage) UndoMinutes() int { return int(store.UndoTTL / time.Minute) }

// confirmPage is the data of confirm.html: the second page a removal takes
// when the browser runs no JavaScript.
type confirmPage struct {
	tabPage
}

// action is an authenticated POST from the tab's page, with the answer
// page already started (language, lead, a fresh page context).
type action struct {
	sess *store.Session
	p    *store.Portal
	page tabPage
	loc  *lang.Localizer
}

// startAction authenticates a POST from the tab's page: the signed page
// context, the optional browser cookie, the live session it names and the
// installed portal. Removal, undo, confirm and view all pass this gate.
func (h *Handlers) startAction(c *gin.Context) (*action, error) {
	pc, err := h.decodePageContext(c.Request.PostForm.Get("ctx"))
	if errors.Is(err, errContextExpired) {
		return nil, fail(http.StatusUnauthorized, "error.session_expired", err)
	}
	if err != nil {
		return nil, fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	if err := h.checkBrowser(c, pc.BID); err != nil {
		return nil, fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	sess, err := h.d.Store.Session(c.Request.Context(), pc.SID, h.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusUnauthorized, "error.session_expired", err)
	}
	if err != nil {
		return nil, fail(http.StatusInternalServerError, "error.internal", err)
	}
	if sess.MemberID != pc.MemberID || sess.LeadID != pc.LeadID || sess.UserID != pc.UserID {
		return nil, fail(http.StatusForbidden, "error.forbidden_action", errors.New("page context does not match its session"))
	}
	p, err := h.activePortal(c.Request.Context(), sess.MemberID)
	if err != nil {
		return nil, err
	}
	if err := notReported(p); err != nil {
		return nil, err
	}
	c.Set(originKey, portalOrigin(p))
	a := &action{sess: sess, p: p, loc: h.d.Lang.For(sess.Lang)}
	a.page = tabPage{base: h.base(a.loc), LeadID: sess.LeadID, LeadTitle: sess.LeadTitle}
	if err := h.setPageContext(c, &a.page, sess); err != nil {
		return nil, err
	}
	return a, nil
}

// listCommands reads the lead, its links and the first names contacts'
// names: the tab's batch without the verification, which the session
// already stands for.
func (h *Handlers) listCommands(leadID int64, names int) []bitrix24.Cmd {
	id := url.Values{"id": {strconv.FormatInt(leadID, 10)}}
	cmds := []bitrix24.Cmd{
		{Key: "lead", Method: "crm.lead.get", Params: id},
		{Key: "items", Method: "crm.lead.contact.items.get", Params: id},
	}
	for i := 0; i < names && i < h.cfg.MaxNamedContacts && len(cmds) < bitrix24.MaxBatch; i++ {
		cmds = append(cmds, bitrix24.Cmd{Key: fmt.Sprintf("c%d", i), Method: "crm.contact.get",
			Params: url.Values{"id": {fmt.Sprintf("$result[items][%d][CONTACT_ID]", i)}}})
	}
	return cmds
}

// fillList puts a listCommands result on the page; it returns the links.
func (h *Handlers) fillList(page *tabPage, loc *lang.Localizer, p *store.Portal, res *bitrix24.BatchResult) ([]leadItem, error) {
	var lead leadFields
	if err := res.Decode("lead", &lead); err != nil {
		return nil, err
	}
	if lead.Title != "" {
		page.LeadTitle = lead.Title
	}
	var items []leadItem
	if err := res.Decode("items", &items); err != nil {
		return nil, err
	}
	page.Loaded, page.Total = true, len(items)
	page.Contacts, page.More = h.contactViews(loc, res, items, p)
	page.CanRemove = page.Total > 0
	return items, nil
}

// readList runs listCommands with the user's token and fills the page;
// an upstream failure becomes the page's banner and status.
func (h *Handlers) readList(ctx context.Context, sess *store.Session, p *store.Portal, page *tabPage, loc *lang.Localizer) int {
	var res *bitrix24.BatchResult
	err := h.asUser(ctx, sess, p, func(endpoint string, token secret.String) error {
		var err error
		res, err = h.d.REST.Batch(ctx, endpoint, token, false, h.listCommands(sess.LeadID, h.cfg.MaxNamedContacts))
		return err
	})
	if err == nil {
		_, err = h.fillList(page, loc, p, res)
	}
	if err != nil {
		page.Banner = h.errorBanner(loc, err)
		page.Banner.Title = loc.T("result.load_error_title")
		return upstreamStatus(err)
	}
	return http.StatusOK
}

// view renders the tab again for an open session: Cancel on the no-JS
// confirmation page returns here.
func (h *Handlers) view(c *gin.Context) error {
	a, err := h.startAction(c)
	if err != nil {
		return err
	}
	sess, p, page, loc := a.sess, a.p, a.page, a.loc
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	h.render(c, h.readList(ctx, sess, p, &page, loc), "tab", page)
	return nil
}

// confirm is the confirmation as a page of its own, for browsers without
// JavaScript: the tab's form posts here, and only this page's "Yes"
// posts to the removal. It reads the current links, so the question names
// the number that will really be unlinked.
func (h *Handlers) confirm(c *gin.Context) error {
	a, err := h.startAction(c)
	if err != nil {
		return err
	}
	sess, p, page, loc := a.sess, a.p, a.page, a.loc
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	if status := h.readList(ctx, sess, p, &page, loc); status != http.StatusOK {
		h.render(c, status, "tab", page)
		return nil
	}
	h.render(c, http.StatusOK, "confirm", confirmPage{page})
	return nil
}

// recordRemoval writes the removal into the admins' history and, when
// links were removed, keeps them as the session's undo snapshot. It runs
// detached from the request: a removal that happened upstream is recorded
// even if the user's browser has gone. It reports whether Undo is offered.
func (h *Handlers) recordRemoval(ctx context.Context, sess *store.Session, removed []leadItem, err error) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	links := make([]store.LeadLink, 0, len(removed))
	for _, it := range removed {
		links = append(links, store.LeadLink{ContactID: int64(it.ContactID), Sort: it.Sort, Primary: bool(it.Primary)})
	}
	h.addHistory(ctx, sess, store.ActionRemove, links, err)
	if err != nil || len(links) == 0 {
		return false
	}
	now := h.now()
	snap := &store.UndoSnapshot{SessionID: sess.ID, MemberID: sess.MemberID, LeadID: sess.LeadID, UserID: sess.UserID,
		Items: links, CreatedAt: now, ExpiresAt: now.Add(store.UndoTTL)}
	if err := h.d.Store.SaveUndo(ctx, snap); err != nil {
		h.d.Logger.Error("save undo snapshot", "member", sess.MemberID, "lead", sess.LeadID, "err", err)
		return false
	}
	return true
}

// errLeadChanged is an undo refused because the lead has contacts again.
var errLeadChanged = errors.New("the lead has contacts linked since the removal")

// addHistory records one action; a failure to record is logged, never
// shown: the user's action already happened (or failed) upstream.
func (h *Handlers) addHistory(ctx context.Context, sess *store.Session, action string, links []store.LeadLink, err error) {
	e := &store.HistoryEntry{MemberID: sess.MemberID, LeadID: sess.LeadID, UserID: sess.UserID,
		Action: action, Outcome: store.OutcomeOK, At: h.now()}
	for _, l := range links {
		e.ContactIDs = append(e.ContactIDs, l.ContactID)
	}
	switch {
	case errors.Is(err, errLeadChanged):
		e.Outcome, e.ErrorCode = store.OutcomeRefused, "LEAD_CHANGED"
	case err != nil:
		e.Outcome, e.ErrorCode = store.OutcomeError, upstreamCode(err)
		if e.ErrorCode == "" {
			e.ErrorCode = strings.TrimPrefix(upstreamKey(err), "error.")
		}
		if len(e.ErrorCode) > 64 {
			e.ErrorCode = e.ErrorCode[:64]
		}
	}
	if err := h.d.Store.AddHistory(ctx, e); err != nil {
		h.d.Logger.Error("record history", "member", sess.MemberID, "lead", sess.LeadID, "action", action, "err", err)
	}
}

// undo puts back the links the session's last removal took away, with
// their SORT and IS_PRIMARY, through crm.lead.contact.items.set with the
// same user's token (so Bitrix24 applies the same rights, and an expired
// token is refreshed as for the removal).
//
// items.set replaces the whole list, so restoring over contacts linked
// since the removal would silently unlink them. The undo therefore reads
// the current list first and refuses unless it is still empty. A batch
// cannot make one sub-call depend on another's result (halt only stops at
// errors), so a read and a write in one batch would write even when the
// read shows new contacts. The read is one batch and the write another,
// which leaves a window of one round trip (tens of milliseconds) in which
// a contact linked by someone else would be replaced. Bitrix24 offers no
// conditional write for contact links; this is the smallest window it
// allows, and the write batch re-reads the list so the page shows what is
// really linked afterwards.
func (h *Handlers) undo(c *gin.Context) error {
	a, err := h.startAction(c)
	if err != nil {
		return err
	}
	sess, p, page, loc := a.sess, a.p, a.page, a.loc
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	snap, err := h.d.Store.TakeUndo(ctx, sess.ID, h.now())
	if errors.Is(err, store.ErrNotFound) {
		status := h.readList(ctx, sess, p, &page, loc)
		if page.Banner == nil {
			page.Banner = &banner{Kind: "warning", Title: loc.T("undo.expired_title"),
				Text: loc.T("undo.expired")}
		}
		h.render(c, status, "tab", page)
		return nil
	}
	if err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	if snap.UserID != sess.UserID || snap.LeadID != sess.LeadID || snap.MemberID != sess.MemberID {
		return fail(http.StatusForbidden, "error.forbidden_action", errors.New("undo snapshot does not match its session"))
	}

	res, err := h.restore(ctx, sess, p, snap)
	recordCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	h.addHistory(recordCtx, sess, store.ActionUndo, snap.Items, err)
	switch {
	case errors.Is(err, errLeadChanged):
		page.Banner = &banner{Kind: "warning", Title: loc.T("undo.refused_title"), Text: loc.T("undo.refused")}
		if _, ferr := h.fillList(&page, loc, p, res); ferr != nil {
			page.Banner.Text += " " + loc.T(upstreamKey(ferr))
		}
		h.render(c, http.StatusConflict, "tab", page)
		return nil
	case err != nil:
		h.logProblem(c, fail(upstreamStatus(err), upstreamKey(err), err))
		page.Banner = h.errorBanner(loc, err)
		page.Banner.Title = loc.T("undo.error_title")
		if retryable(err) {
			// Nothing was written: the user may try again while the
			// snapshot is still valid.
			if serr := h.d.Store.SaveUndo(recordCtx, snap); serr == nil {
				page.Undo = true
			}
		}
		h.render(c, upstreamStatus(err), "tab", page)
		return nil
	}
	page.Reload = true
	page.Banner = &banner{Kind: "success", Title: loc.T("undo.done_title"),
		Text: loc.N("undo.done", len(snap.Items), "Title", page.LeadTitle)}
	if _, ferr := h.fillList(&page, loc, p, res); ferr != nil {
		// Restored, but the fresh list could not be read: say so plainly.
		page.Loaded = false
		page.Banner.Text += " " + loc.T(upstreamKey(ferr))
	}
	h.d.Logger.Info("contacts restored", "member", sess.MemberID, "lead", sess.LeadID, "user", sess.UserID, "count", len(snap.Items))
	h.render(c, http.StatusOK, "tab", page)
	return nil
}

// restore runs the undo's two batches (see undo) and returns the batch
// whose lead and items the page shows: the read when the lead changed,
// the write's re-read otherwise.
func (h *Handlers) restore(ctx context.Context, sess *store.Session, p *store.Portal, snap *store.UndoSnapshot) (*bitrix24.BatchResult, error) {
	var out *bitrix24.BatchResult
	err := h.asUser(ctx, sess, p, func(endpoint string, token secret.String) error {
		check, err := h.d.REST.Batch(ctx, endpoint, token, false, h.listCommands(sess.LeadID, h.cfg.MaxNamedContacts))
		if err != nil {
			return err
		}
		var current []leadItem
		if err := check.Decode("items", &current); err != nil {
			return err
		}
		if len(current) > 0 {
			out = check
			return errLeadChanged
		}
		set := url.Values{"id": {strconv.FormatInt(sess.LeadID, 10)}}
		for i, l := range snap.Items {
			k := fmt.Sprintf("items[%d]", i)
			primary := "N"
			if l.Primary {
				primary = "Y"
			}
			set.Set(k+"[CONTACT_ID]", strconv.FormatInt(l.ContactID, 10))
			set.Set(k+"[SORT]", strconv.Itoa(l.Sort))
			set.Set(k+"[IS_PRIMARY]", primary)
		}
		cmds := append([]bitrix24.Cmd{{Key: "set", Method: "crm.lead.contact.items.set", Params: set}},
			h.listCommands(sess.LeadID, len(snap.Items))...)
		res, err := h.d.REST.Batch(ctx, endpoint, token, true, cmds)
		if err != nil {
			return err
		}
		var ok bool
		if err := res.Decode("set", &ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("crm.lead.contact.items.set answered false: %w", bitrix24.ErrBadResponse)
		}
		out = res
		return nil
	})
	return out, err
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
