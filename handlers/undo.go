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
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

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
	h.d.Logger.InfoContext(ctx, "contacts restored", "member", sess.MemberID, "lead", sess.LeadID, "user", sess.UserID, "count", len(snap.Items))
	h.render(c, http.StatusOK, "tab", page)
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
			listCommands(sess.LeadID)...)
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
