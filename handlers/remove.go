package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// remove handles "Remove all contacts": crm.lead.contact.items.delete for
// the lead named by the page context, with the clicking user's own token
// (so Bitrix24 applies that user's CRM rights), never the installer's.
func (h *Handlers) remove(c *gin.Context, a *action) error {
	ctx, sess, p, page, loc := a.ctx, a.sess, a.p, a.page, a.loc

	removed, uncounted, undo, err := h.removeContacts(ctx, sess, p, a.via)
	page.Undo = undo
	if err != nil {
		// The page keeps the header and the list the user clicked on, and
		// offers "Back to the list", and "Try again" where it can help.
		status := h.failed(c, &page, loc, err)
		page.Retry = retryable(err)
		a.keepList(&page)
		h.renderTab(c, status, "tab", page)
		return nil
	}
	h.d.Logger.InfoContext(ctx, "contacts removed", "member", sess.MemberID, "lead", sess.LeadID, "user", sess.UserID, "count", len(removed))
	page.Loaded, page.Reload = true, true
	text := loc.N("result.success", len(removed), "Title", sess.LeadTitle)
	switch {
	case uncounted:
		// The links are gone (read back after an ambiguous answer), but how
		// many there were is unknown.
		text = loc.T("result.success_uncounted", "Title", sess.LeadTitle)
	case len(removed) == 0:
		text = loc.T("result.nothing", "Title", sess.LeadTitle)
	}
	page.Banner = &banner{Kind: "success", Title: loc.T("result.success_title"), Text: text}
	h.renderTab(c, http.StatusOK, "tab", page)
	return nil
}

// failed puts an upstream failure of an action on its page: logged as a
// problem, explained in the banner. It returns the page's status.
func (h *Handlers) failed(c *gin.Context, page *tabPage, loc *lang.Localizer, err error) int {
	h.logProblem(c, fail(upstreamStatus(err), upstreamKey(err), err))
	page.Banner = h.errorBanner(loc, err)
	return upstreamStatus(err)
}

// verifyReserve is the part of a click's deadline kept back for reading the
// contacts again after an ambiguous failure of the delete (at most a
// quarter of the deadline).
const verifyReserve = 3 * time.Second

// removal is the shared outcome of one coalesced removal.
type removal struct {
	removed   []leadItem
	uncounted bool
	undo      bool // an undo snapshot was stored
}

// removeContacts removes every contact link of the session's lead and
// returns the links removed. Concurrent clicks of the same user on the
// same lead (a double click, two tabs) share one removal: at most one
// delete is in flight per (portal, lead, user), and every click gets its
// outcome. The shared removal runs detached from the first click, within
// that click's deadline, so a click that hangs up cannot cut it short for
// the others; each click waits until its own deadline.
//
// uncounted reports a removal that is known to have happened only because
// the contacts were read back (see removeOnce): the count is then unknown.
//
// The history entry and the undo snapshot are written once, inside the
// shared removal, so coalesced clicks leave one record, not one each.
//
// via is where the click came from (store.ViaTab, ViaList), for the
// history; coalesced clicks from two surfaces leave the first one's.
func (h *Handlers) removeContacts(ctx context.Context, sess *store.Session, p *store.Portal, via string) (removed []leadItem, uncounted, undo bool, err error) {
	key := sess.MemberID + "|" + strconv.FormatInt(sess.LeadID, 10) + "|" + strconv.FormatInt(sess.UserID, 10)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(h.cfg.RequestTimeout)
	}
	s, pc := *sess, *p // the flight owns its copies
	f := h.removals.do(key, func() (any, error) {
		fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		r, err := h.removeOnce(fctx, &s, &pc)
		r.undo = h.recordRemoval(fctx, &s, via, r, err)
		return r, err
	})
	v, err := f.wait(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = errors.Join(bitrix24.ErrUnreachable, err)
		}
		return nil, false, false, err
	}
	r := v.(removal)
	return r.removed, r.uncounted, r.undo, nil
}

// removeOnce reads the lead's contact links and deletes them in one batch
// (halt on the first error), so a click costs one round trip and the
// answer says exactly how many links were removed.
//
// A batch is never retried, and a failure that leaves open whether the
// delete ran (a 500 without a code, a connection lost after sending, a
// timeout, an unreadable answer) is not reported as a failure blindly:
// the contacts are read back with crm.lead.contact.items.get, within the
// part of the deadline kept for it, and the removal counts as done only if
// none is left (docs/reliability.md, row H; the delete writes a fixed end state, so
// no link left means the user's intent is met).
func (h *Handlers) removeOnce(ctx context.Context, sess *store.Session, p *store.Portal) (removal, error) {
	id := url.Values{"id": {strconv.FormatInt(sess.LeadID, 10)}}
	cmds := []bitrix24.Cmd{
		{Key: "before", Method: "crm.lead.contact.items.get", Params: id},
		{Key: "delete", Method: "crm.lead.contact.items.delete", Params: id},
	}
	bctx, cancel := context.WithCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		reserve := min(verifyReserve, time.Until(deadline)/4)
		bctx, cancel = context.WithDeadline(ctx, deadline.Add(-reserve))
	}
	defer cancel()
	var before []leadItem
	err := h.asUser(bctx, sess, p, func(endpoint string, token secret.String) error {
		res, err := h.d.REST.Batch(bctx, endpoint, token, true, cmds)
		if err != nil {
			return err
		}
		if err := res.Decode("before", &before); err != nil {
			return err
		}
		return answeredTrue(res, "delete", "crm.lead.contact.items.delete")
	})
	if err == nil {
		return removal{removed: before}, nil
	}
	if !bitrix24.Ambiguous(err) || errors.Is(err, errRefreshFailed) || ctx.Err() != nil {
		return removal{}, err
	}
	var left []leadItem
	verr := h.asUser(ctx, sess, p, func(endpoint string, token secret.String) error {
		return h.d.REST.Call(ctx, endpoint, token, "crm.lead.contact.items.get", map[string]any{"id": sess.LeadID}, &left)
	})
	if verr != nil || len(left) > 0 {
		h.d.Logger.InfoContext(ctx, "removal failed ambiguously; contacts still linked or unknown",
			"member", sess.MemberID, "lead", sess.LeadID, "left", len(left), "verify_err", verr)
		return removal{}, err
	}
	h.d.Logger.InfoContext(ctx, "removal answer lost; read-back shows no contact left", "member", sess.MemberID, "lead", sess.LeadID, "err", err)
	return removal{uncounted: true}, nil
}

// errLeadChanged is an undo refused because the lead has contacts again.
var errLeadChanged = errors.New("the lead has contacts linked since the removal")

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
func (h *Handlers) undo(c *gin.Context, a *action) error {
	ctx, sess, p, page, loc := a.ctx, a.sess, a.p, a.page, a.loc
	snap, err := h.d.Store.TakeUndo(ctx, sess.ID, h.now())
	if errors.Is(err, store.ErrNotFound) {
		if err := h.readList(ctx, sess, p, &page, loc); err != nil {
			a.keepList(&page)
			h.renderTab(c, upstreamStatus(err), "tab", page)
			return nil
		}
		page.Banner = &banner{Kind: "warning", Title: loc.T("undo.expired_title"), Text: loc.T("undo.expired")}
		h.renderTab(c, http.StatusOK, "tab", page)
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
	h.addHistory(recordCtx, sess, a.via, store.ActionUndo, snap.Items, err)
	switch {
	case errors.Is(err, errLeadChanged):
		page.Banner = &banner{Kind: "warning", Title: loc.T("undo.refused_title"), Text: loc.T("undo.refused")}
		if _, ferr := h.fillList(&page, loc, p, res); ferr != nil {
			page.Banner.Text += " " + loc.T(upstreamKey(ferr))
		}
		h.renderTab(c, http.StatusConflict, "tab", page)
		return nil
	case err != nil:
		status := h.failed(c, &page, loc, err)
		page.Banner.Title = loc.T("undo.error_title")
		if retryable(err) {
			// Nothing was written: the user may try again while the
			// snapshot is still valid. Undo itself is the "Try again".
			if serr := h.d.Store.SaveUndo(recordCtx, snap); serr == nil {
				page.Undo = true
			}
		}
		a.keepList(&page)
		h.renderTab(c, status, "tab", page)
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
	h.d.Logger.InfoContext(ctx, "contacts restored", "member", sess.MemberID, "lead", sess.LeadID, "user", sess.UserID, "count", len(snap.Items))
	h.renderTab(c, http.StatusOK, "tab", page)
	return nil
}

// restore runs the undo's two batches (see undo) and returns the batch
// whose lead and items the page shows: the read when the lead changed,
// the write's re-read otherwise.
func (h *Handlers) restore(ctx context.Context, sess *store.Session, p *store.Portal, snap *store.UndoSnapshot) (*bitrix24.BatchResult, error) {
	var out *bitrix24.BatchResult
	err := h.asUser(ctx, sess, p, func(endpoint string, token secret.String) error {
		check, err := h.d.REST.Batch(ctx, endpoint, token, false, listCommands(sess.LeadID))
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
		cmds := append([]bitrix24.Cmd{{Key: "set", Method: "crm.lead.contact.items.set", Params: itemsSetParams(sess.LeadID, snap.Items)}},
			listCommands(sess.LeadID)...)
		res, err := h.d.REST.Batch(ctx, endpoint, token, true, cmds)
		if err != nil {
			return err
		}
		if err := answeredTrue(res, "set", "crm.lead.contact.items.set"); err != nil {
			return err
		}
		out = res
		return nil
	})
	return out, err
}

// itemsSetParams is crm.lead.contact.items.set's parameters that link a
// lead's contacts back exactly as they were: order, SORT and primary flag.
// The tab's undo and a bulk run's undo both put links back with it.
func itemsSetParams(leadID int64, links []store.LeadLink) url.Values {
	q := url.Values{"id": {strconv.FormatInt(leadID, 10)}}
	for i, l := range links {
		k := fmt.Sprintf("items[%d]", i)
		primary := "N"
		if l.Primary {
			primary = "Y"
		}
		q.Set(k+"[CONTACT_ID]", strconv.FormatInt(l.ContactID, 10))
		q.Set(k+"[SORT]", strconv.Itoa(l.Sort))
		q.Set(k+"[IS_PRIMARY]", primary)
	}
	return q
}

// answeredTrue reads a write's answer in a batch: anything but true is a
// bad response, after which whether the write happened is unknown.
func answeredTrue(res *bitrix24.BatchResult, key, method string) error {
	var ok bool
	if err := res.Decode(key, &ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s answered false: %w", method, bitrix24.ErrBadResponse)
	}
	return nil
}
