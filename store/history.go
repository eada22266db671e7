package store

import "time"

// UndoTTL is how long a removal can be undone. Short on purpose: the
// longer a snapshot waits, the likelier the lead has moved on and the less
// a user remembers what "Undo" would bring back.
const UndoTTL = 10 * time.Minute

// LeadLink is one lead-contact link as crm.lead.contact.items.get reports
// it: what crm.lead.contact.items.set needs to put it back exactly.
type LeadLink struct {
	ContactID int64 `json:"c"`
	Sort      int   `json:"s"`
	Primary   bool  `json:"p"`
}

// UndoSnapshot is what one removal took away from a lead, kept on the
// server (never trusted from a form) for the session that removed it.
// There is at most one per session: a newer removal replaces it.
type UndoSnapshot struct {
	SessionID string // raw session id; backends key rows by secret.Keyring.Lookup(SessionID)
	MemberID  string
	LeadID    int64
	UserID    int64
	Items     []LeadLink
	CreatedAt time.Time
	ExpiresAt time.Time
}

// History actions and outcomes.
const (
	ActionRemove = "remove"
	ActionUndo   = "undo"

	OutcomeOK    = "ok"
	OutcomeError = "error" // Bitrix24 (or the network) refused; ErrorCode says why
	// OutcomeRefused is an undo the app declined on its own, because the
	// lead has contacts again (ErrorCode "LEAD_CHANGED").
	OutcomeRefused = "refused"
)

// HistoryEntry is one removal or undo as the admins' page lists it. It
// holds ids only (no names, no tokens): enough to find the lead and the
// contacts in the CRM, nothing worth stealing.
type HistoryEntry struct {
	ID         int64
	MemberID   string
	LeadID     int64
	UserID     int64
	Action     string // ActionRemove or ActionUndo
	ContactIDs []int64
	Outcome    string // OutcomeOK, OutcomeError or OutcomeRefused
	ErrorCode  string // Bitrix24 error code, "" on success
	At         time.Time
}
