package handlers

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/b24apps/leadcontacts/store"
)

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
		h.d.Logger.ErrorContext(ctx, "save undo snapshot", "member", sess.MemberID, "lead", sess.LeadID, "err", err)
		return false
	}
	return true
}

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
		h.d.Logger.ErrorContext(ctx, "record history", "member", sess.MemberID, "lead", sess.LeadID, "action", action, "err", err)
	}
}
