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
	// OutcomeUncounted is a removal known to have happened only because
	// the lead's contacts were read back after a lost answer: the links
	// are gone, how many there were is unknown (ContactIDs is empty).
	OutcomeUncounted = "uncounted"
)

// Where a history entry came from: the lead card's tab, the lead list's
// row menu, an automation rule on a lead stage, or an admin's bulk run.
const (
	ViaTab        = "tab"
	ViaList       = "list"
	ViaAutomation = "automation"
	ViaBulk       = "bulk"
)

// HistoryEntry is one removal or undo as the admins' page lists it. It
// holds no token; besides the ids it keeps the names the tab showed the
// user when they acted (the user's own, the lead's title, the contacts'),
// so an administrator reads who unlinked whom without the app asking
// Bitrix24 again, and reads them as they were then (a contact deleted
// since still has its name here). The names are CRM data the admin can
// see anyway; they go with the entry (retention, uninstall with CLEAN).
// A name that was not read is "": rows written before names were kept
// have none, and the admins' page falls back to the ids.
type HistoryEntry struct {
	ID         int64
	MemberID   string
	LeadID     int64
	UserID     int64
	Action     string // ActionRemove or ActionUndo
	ContactIDs []int64
	Outcome    string // OutcomeOK, OutcomeError, OutcomeRefused or OutcomeUncounted
	ErrorCode  string // Bitrix24 error code, "" on success
	At         time.Time

	UserName  string // the acting user's NAME and LAST_NAME (profile)
	LeadTitle string
	// ContactNames[i] names ContactIDs[i]; "" where unknown, and shorter
	// than ContactIDs (nil for older rows) when the tail is unknown.
	ContactNames []string

	// Via is where the action was taken (ViaTab when ""); RunID the bulk
	// run it belongs to, 0 outside one.
	Via   string
	RunID int64
}
