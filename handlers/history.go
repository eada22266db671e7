package handlers

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/store"
)

// recordRemoval writes the removal into the admins' history and, when
// links were removed, keeps them as the session's undo snapshot. It runs
// detached from the request: a removal that happened upstream is recorded
// even if the user's browser has gone. It reports whether Undo is offered.
func (h *Handlers) recordRemoval(ctx context.Context, sess *store.Session, via string, r removal, err error) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	links := make([]store.LeadLink, 0, len(r.removed))
	for _, it := range r.removed {
		links = append(links, store.LeadLink{ContactID: int64(it.ContactID), Sort: it.Sort, Primary: bool(it.Primary)})
	}
	e := h.historyEntry(sess, via, store.ActionRemove, links, err)
	if err == nil && r.uncounted {
		e.Outcome = store.OutcomeUncounted
	}
	h.saveHistory(ctx, e)
	if err != nil || len(links) == 0 || sess.ID == "" {
		return false // nothing to undo, or no session to offer it in (a rule's run)
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
func (h *Handlers) addHistory(ctx context.Context, sess *store.Session, via, action string, links []store.LeadLink, err error) {
	h.saveHistory(ctx, h.historyEntry(sess, via, action, links, err))
}

// historyEntry is the history's record of one action: who, on which lead,
// from where (via, a store.Via* value), which contacts and how it ended,
// with the names the session kept from the frame's batch (see
// store.HistoryEntry).
func (h *Handlers) historyEntry(sess *store.Session, via, action string, links []store.LeadLink, err error) *store.HistoryEntry {
	e := &store.HistoryEntry{MemberID: sess.MemberID, LeadID: sess.LeadID, UserID: sess.UserID,
		Action: action, Outcome: store.OutcomeOK, At: h.now(), Via: via,
		UserName: sess.UserName, LeadTitle: clip(sess.LeadTitle)}
	named := false
	for _, l := range links {
		e.ContactIDs = append(e.ContactIDs, l.ContactID)
		name := sess.ContactNames[l.ContactID]
		e.ContactNames = append(e.ContactNames, name)
		named = named || name != ""
	}
	if !named {
		e.ContactNames = nil
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
	return e
}

// saveHistory writes an entry; a failure is logged, never shown.
func (h *Handlers) saveHistory(ctx context.Context, e *store.HistoryEntry) {
	if err := h.d.Store.AddHistory(ctx, e); err != nil {
		h.d.Logger.ErrorContext(ctx, "record history", "member", e.MemberID, "lead", e.LeadID, "action", e.Action, "err", err)
	}
}

// maxNameRunes bounds a name kept for the history: Bitrix24's own name
// fields are far shorter, so only junk is cut.
const maxNameRunes = 255

// clip cuts s to maxNameRunes runes.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxNameRunes {
		return s
	}
	return string([]rune(s)[:maxNameRunes])
}

// fullName is a person's name as Bitrix24 shows it: the parts that are
// set, in the order given, single-spaced.
func fullName(parts ...string) string {
	return clip(strings.Join(strings.Fields(strings.Join(parts, " ")), " "))
}

// profileName is the user's own name from a batch's "me" (profile), ""
// when it cannot be read: the history then falls back to the user's id.
func profileName(res *bitrix24.BatchResult) string {
	var me struct {
		Name     string `json:"NAME"`
		LastName string `json:"LAST_NAME"`
	}
	if err := res.Decode("me", &me); err != nil {
		return ""
	}
	return fullName(me.Name, me.LastName)
}

// contactNames maps the contacts a batch's "names" (crm.contact.list)
// read to their full names; nil when none were read.
func contactNames(res *bitrix24.BatchResult) map[int64]string {
	var found []contactFields
	if err := res.Decode("names", &found); err != nil {
		return nil
	}
	var out map[int64]string
	for _, cf := range found {
		if name := fullName(cf.Name, cf.SecondName, cf.LastName); cf.ID > 0 && name != "" {
			if out == nil {
				out = map[int64]string{}
			}
			out[int64(cf.ID)] = name
		}
	}
	return out
}
