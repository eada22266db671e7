package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/store"
)

// bulk handles the bulk card's buttons (op): count the leads a filter
// matches, start a run over them, and pause, resume, cancel or undo the
// portal's latest run (named by the form, so a button of a stale page
// never acts on a newer run). Every change takes effect at the run's next
// batch; resume and undo act with the clicking admin's own session from
// then on. The page is then drawn again, as after a re-bind.
func (h *Handlers) bulk(ctx context.Context, c *gin.Context, sess *store.Session, p *store.Portal) error {
	loc := h.d.Lang.For(sess.Lang)
	form := c.Request.PostForm
	f, err := bulkFilterOf(form)
	if err != nil {
		return fail(http.StatusBadRequest, "error.bad_request", err)
	}
	page := adminPage{base: h.base(loc)}
	var counted *[3]int
	var atLeast bool
	bn, err := h.bulkOp(ctx, sess, p, loc, form.Get("op"), form.Get("run"), f, &counted, &atLeast)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if bn != nil && bn.Kind == "danger" {
		status = http.StatusBadGateway
	}
	entries, err := h.d.Store.History(ctx, p.MemberID, historyShown)
	if err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	res, err := h.batchAsUser(ctx, sess, p, false, pageCommands(entries, ""))
	if err != nil {
		h.adminFailed(c, page, loc, loc.T("app.bulk_failed"), err)
		return nil
	}
	if err := h.fillAdmin(&page, loc, p, sess, res, h.browserID(c), entries, ""); err != nil {
		return err
	}
	h.fillBulk(ctx, &page, loc, p, res, f)
	if counted != nil {
		page.Bulk.Counted, page.Bulk.Leads, page.Bulk.Links, page.Bulk.LinksAtLeast = true, counted[0], counted[1], atLeast
	}
	if bn != nil {
		page.Banner = bn
	}
	h.render(c, status, "app", page)
	return nil
}

// bulkOp does one button's work and returns the banner that reports it
// (nil for none); a count is returned through counted.
func (h *Handlers) bulkOp(ctx context.Context, sess *store.Session, p *store.Portal, loc *lang.Localizer, op, runID string,
	f store.BulkFilter, counted **[3]int, atLeast *bool) (*banner, error) {
	failed := func(err error) *banner {
		b := h.errorBanner(loc, err)
		b.Title = loc.T("app.bulk_failed")
		return b
	}
	now := h.now()
	switch op {
	case "count", "start":
		leads, links, floor, err := h.countLeads(ctx, sess, p, f)
		if err != nil {
			h.d.Logger.InfoContext(ctx, "bulk count failed", "member", p.MemberID, "err", err)
			return failed(err), nil
		}
		*counted, *atLeast = &[3]int{leads, links}, floor
		if op == "count" {
			return nil, nil
		}
		if h.d.Bulk == nil {
			return nil, fail(http.StatusServiceUnavailable, "error.internal", errors.New("no job engine"))
		}
		r := &store.BulkRun{MemberID: p.MemberID, UserID: sess.UserID, UserName: sess.UserName, Lang: sess.Lang,
			SessionID: sess.ID, Filter: f, Matched: int64(leads), CreatedAt: now}
		if err := h.d.Store.CreateBulkRun(ctx, r); errors.Is(err, store.ErrConflict) {
			return &banner{Kind: "warning", Title: loc.T("app.bulk_busy")}, nil
		} else if err != nil {
			return nil, fail(http.StatusInternalServerError, "error.internal", err)
		}
		h.enqueue(ctx, r.ID)
		h.d.Logger.InfoContext(ctx, "bulk run started", "member", p.MemberID, "user", sess.UserID, "run", r.ID, "leads", leads)
		return &banner{Kind: "success", Title: loc.T("app.bulk_started")}, nil
	}
	id, err := strconv.ParseInt(runID, 10, 64)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "error.bad_request", err)
	}
	latest, err := h.d.Store.LatestBulkRun(ctx, p.MemberID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusInternalServerError, "error.internal", err)
	}
	if latest == nil || latest.ID != id {
		return &banner{Kind: "warning", Title: loc.T("app.bulk_changed")}, nil
	}
	active := []string{store.RunQueued, store.RunRunning}
	switch op {
	case "pause":
		err = h.d.Store.SetBulkRunState(ctx, id, active, store.RunPaused, "", "", now)
	case "cancel":
		err = h.d.Store.SetBulkRunState(ctx, id, append(active, store.RunPaused), store.RunCancelled, "", "", now)
	case "resume":
		err = h.d.Store.SetBulkRunState(ctx, id, []string{store.RunPaused}, store.RunRunning, "", sess.ID, now)
	case "undo":
		err = h.d.Store.SetBulkUndo(ctx, id, store.UndoNone, store.UndoRunning, sess.ID, now)
	default:
		return nil, fail(http.StatusBadRequest, "error.bad_request", fmt.Errorf("bulk op %q", op))
	}
	if errors.Is(err, store.ErrConflict) {
		return &banner{Kind: "warning", Title: loc.T("app.bulk_changed")}, nil
	}
	if err != nil {
		return nil, fail(http.StatusInternalServerError, "error.internal", err)
	}
	if op == "resume" || op == "undo" {
		h.enqueue(ctx, id)
	}
	h.d.Logger.InfoContext(ctx, "bulk run "+op, "member", p.MemberID, "user", sess.UserID, "run", id)
	return nil, nil
}

// enqueue asks the job engine to work a run now. A failure (the engine is
// still migrating at boot, say) is only logged: the run is stored, and
// the engine's resume pass picks up every run with work to do.
func (h *Handlers) enqueue(ctx context.Context, id int64) {
	if h.d.Bulk == nil {
		return
	}
	if err := h.d.Bulk.EnqueueBulkRun(ctx, id); err != nil {
		h.d.Logger.WarnContext(ctx, "bulk run not enqueued; the resume pass will pick it up", "run", id, "err", err)
	}
}
