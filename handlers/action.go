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

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
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
	// ctx bounds the action's upstream work (RequestTimeout); the handler
	// defers cancel.
	ctx    context.Context
	cancel context.CancelFunc
	sess   *store.Session
	p      *store.Portal
	page   tabPage
	loc    *lang.Localizer
	view   *listView // the list the posting page showed, if it carried one
	via    string    // the surface the frame opened on, for the history
}

// withAction adapts an action of the lead page on surface on (the tab, the
// list menu's slider): startAction authenticates the POST and starts the
// answer page, fn does the work, and the action's deadline ends with fn.
func (h *Handlers) withAction(on surface, fn func(c *gin.Context, a *action) error) func(*gin.Context) error {
	return func(c *gin.Context) error {
		a, err := h.startAction(c, on)
		if err != nil {
			return err
		}
		defer a.cancel()
		return fn(c, a)
	}
}

// startAction authenticates a POST from the lead page: the signed page
// context (signed for this surface), the optional browser cookie, the
// live session it names and the installed portal. Removal, undo, confirm
// and view all pass this gate.
func (h *Handlers) startAction(c *gin.Context, on surface) (a *action, err error) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	pc, err := h.decodePageContext(c.Request.PostForm.Get("ctx"))
	if errors.Is(err, errContextExpired) {
		return nil, fail(http.StatusUnauthorized, "error.session_expired", err)
	}
	if err != nil {
		return nil, fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	if got, _ := h.surfaceVia(pc.Via); got.via != on.via {
		// A page of one surface posted to another's routes: the history
		// would record the wrong origin.
		return nil, fail(http.StatusForbidden, "error.forbidden_action", fmt.Errorf("page context of %q posted to %s", pc.Via, on.path))
	}
	if err := h.checkBrowser(c, pc.BID); err != nil {
		return nil, fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	sess, err := h.d.Store.Session(ctx, pc.SID, h.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusUnauthorized, "error.session_expired", err)
	}
	if err != nil {
		return nil, fail(http.StatusInternalServerError, "error.internal", err)
	}
	if sess.MemberID != pc.MemberID || sess.LeadID != pc.LeadID || sess.UserID != pc.UserID {
		return nil, fail(http.StatusForbidden, "error.forbidden_action", errors.New("page context does not match its session"))
	}
	p, err := h.activePortal(ctx, sess.MemberID)
	if err != nil {
		return nil, err
	}
	if err := notReported(p); err != nil {
		return nil, err
	}
	c.Set(originKey, portalOrigin(p))
	a = &action{ctx: ctx, cancel: cancel, sess: sess, p: p, loc: h.d.Lang.For(sess.Lang),
		view: h.openView(c.Request.PostForm.Get("view"), sess.ID), via: on.via}
	a.page = tabPage{base: h.base(a.loc), LeadID: sess.LeadID, LeadTitle: sess.LeadTitle}
	// The next page keeps the binding checkBrowser just accepted: the
	// cookie, when the browser sends one, already holds pc.BID.
	if err := h.setPageContext(&a.page, sess, pc.BID, on); err != nil {
		return nil, err
	}
	return a, nil
}

// listCommands reads what the tab shows of a lead in three commands whose
// references always resolve: crm.item.get gives the lead's title and, in
// item.contactIds, every linked contact's id as one array (empty, never
// absent, when nothing is linked), which crm.contact.list takes whole as an
// "@ID" filter for the names. Nothing refers to a position in a list, so
// no reference can run past its end (platform doc, "Batch references").
// crm.lead.contact.items.get gives the links' order and primary flag.
func listCommands(leadID int64) []bitrix24.Cmd {
	id := strconv.FormatInt(leadID, 10)
	return []bitrix24.Cmd{
		{Key: "lead", Method: "crm.item.get", Params: url.Values{"entityTypeId": {"1"}, "id": {id}}},
		{Key: "items", Method: "crm.lead.contact.items.get", Params: url.Values{"id": {id}}},
		{Key: "names", Method: "crm.contact.list", Params: url.Values{
			"filter[@ID]": {"$result[lead][item][contactIds]"},
			"select[0]":   {"ID"}, "select[1]": {"NAME"}, "select[2]": {"SECOND_NAME"},
			"select[3]": {"LAST_NAME"}, "select[4]": {"POST"},
		}},
	}
}

// leadTitle is the lead's title from a listCommands result (crm.item.get),
// or the lead's own error (NOT_FOUND, ACCESS_DENIED).
func leadTitle(res *bitrix24.BatchResult) (string, error) {
	var lead struct {
		Item struct {
			Title string `json:"title"`
		} `json:"item"`
	}
	err := res.Decode("lead", &lead)
	return lead.Item.Title, err
}

// fillList puts a listCommands result on the page; it returns the links.
func (h *Handlers) fillList(page *tabPage, loc *lang.Localizer, p *store.Portal, res *bitrix24.BatchResult) ([]leadItem, error) {
	title, err := leadTitle(res)
	if err != nil {
		return nil, err
	}
	if title != "" {
		page.LeadTitle = title
	}
	var items []leadItem
	if err := res.Decode("items", &items); err != nil {
		return nil, err
	}
	page.Loaded, page.Total = true, len(items)
	page.Contacts, page.Unnamed = contactViews(loc, res, items, portalOrigin(p))
	page.CanRemove = page.Total > 0
	return items, nil
}

// readList runs listCommands with the user's token and fills the page;
// an upstream failure becomes the page's banner, and is returned.
func (h *Handlers) readList(ctx context.Context, sess *store.Session, p *store.Portal, page *tabPage, loc *lang.Localizer) error {
	res, err := h.batchAsUser(ctx, sess, p, false, listCommands(sess.LeadID))
	if err == nil {
		_, err = h.fillList(page, loc, p, res)
	}
	if err != nil {
		page.Loaded = false
		page.Banner = h.errorBanner(loc, err)
		page.Banner.Title = loc.T("result.load_error_title")
	}
	return err
}

// view renders the tab again for an open session: Cancel on the no-JS
// confirmation page and "Back to the list" on a failure page return here.
func (h *Handlers) view(c *gin.Context, a *action) error { return h.showList(c, a, "tab", false) }

// confirm is the confirmation as a page of its own, for browsers without
// JavaScript: the tab's form posts here, and only this page's "Yes"
// posts to the removal. It reads the current links, so the question names
// the number that will really be unlinked.
func (h *Handlers) confirm(c *gin.Context, a *action) error {
	return h.showList(c, a, "confirm", true)
}

// showList reads the lead's links afresh and renders them as page. When
// the list cannot be read, the tab keeps the one it showed, "Back to the
// list" is the way to try again, and offerRetry adds the removal's "Try
// again" when the failure may pass.
func (h *Handlers) showList(c *gin.Context, a *action, page string, offerRetry bool) error {
	pg := a.page
	if err := h.readList(a.ctx, a.sess, a.p, &pg, a.loc); err != nil {
		pg.Retry = offerRetry && retryable(err)
		a.keepList(&pg)
		h.renderTab(c, upstreamStatus(err), "tab", pg)
		return nil
	}
	h.renderTab(c, http.StatusOK, page, pg)
	return nil
}
