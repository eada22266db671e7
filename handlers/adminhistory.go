package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/lang"
	"github.com/b24apps/leadcontacts/store"
)

// The admins' history in words. Names come from the entry (kept when the
// user acted, see store.HistoryEntry) and, for users of entries written
// before names were kept, from user.get in the page's one batch. Why a
// snapshot rather than reading every name when the page opens: the tab's
// batch has read them anyway, so keeping them costs no request and no
// scope; the admin reads the names as they were when it happened (a
// contact deleted since keeps its name); and the page needs no CRM read
// of up to 50 leads and hundreds of contacts on every open. Only users
// are looked up, and only for old entries: user_brief, the least scope
// that reads names, does not reach CRM data.

// userScopes are the scopes under which user.get answers; user_brief, the
// one app.json asks for, is the least: names without contact details
// (user-scope.md).
var userScopes = []string{"user_brief", "user_basic", "user"}

// namesUsers reports whether a granted scope list lets the app read user
// names; an empty list (older portals send none, and the re-bind does not
// know it) is not known to lack it.
func namesUsers(granted string) bool {
	if strings.TrimSpace(granted) == "" {
		return true
	}
	for _, s := range userScopes {
		if len(missingScopes(granted, []string{s})) == 0 {
			return true
		}
	}
	return false
}

// unnamedUsers lists, once each, the users of entries written without the
// user's name, when the granted scopes may let user.get name them. At
// most historyShown entries, so at most one page of user.get (50).
func unnamedUsers(entries []store.HistoryEntry, granted string) []int64 {
	if !namesUsers(granted) {
		return nil
	}
	var ids []int64
	for _, e := range entries {
		if e.UserName == "" && e.UserID > 0 && !slices.Contains(ids, e.UserID) {
			ids = append(ids, e.UserID)
		}
	}
	return ids
}

// userNames reads the batch's user.get answer: the names it gave, and
// whether Bitrix24 refused it for want of a scope. Any other failure, or
// no such command, gives no names: the ids stay.
func userNames(res *bitrix24.BatchResult) (names map[int64]string, refused bool) {
	var users []struct {
		ID       bitrix24.ID `json:"ID"`
		Name     string      `json:"NAME"`
		LastName string      `json:"LAST_NAME"`
	}
	names = map[int64]string{}
	if err := res.Decode("users", &users); err != nil {
		return names, errors.Is(err, bitrix24.ErrInsufficientScope)
	}
	for _, u := range users {
		if name := fullName(u.Name, u.LastName); u.ID > 0 && name != "" {
			names[int64(u.ID)] = name
		}
	}
	return names, false
}

// adminZone is where the admin reads times, from the batch's profile
// (getProfile, recorded: TIME_ZONE is the zone the user chose, "" when
// it is automatic; TIME_ZONE_OFFSET the user's offset from UTC in
// seconds now). A named zone known here wins, as it also knows the
// offset of past dates (summer time); else the offset; else UTC. The
// second value names the zone on the page: "Europe/Berlin", "UTC+03:00",
// "UTC".
func adminZone(res *bitrix24.BatchResult) (*time.Location, string) {
	var me struct {
		Zone   string          `json:"TIME_ZONE"`
		Offset json.RawMessage `json:"TIME_ZONE_OFFSET"`
	}
	if err := res.Decode("me", &me); err != nil {
		return time.UTC, "UTC"
	}
	// "Local" would be this server's zone, not the user's.
	if name := strings.TrimSpace(me.Zone); name != "" && name != "Local" && len(name) <= 64 {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc, name
		}
	}
	off, err := strconv.ParseFloat(strings.Trim(string(me.Offset), `"`), 64)
	// Real offsets lie within ±14 hours; anything else is junk.
	if err != nil || off == 0 || math.Abs(off) > 14*3600 || off != math.Trunc(off) {
		return time.UTC, "UTC"
	}
	secs := int(off)
	sign := '+'
	if secs < 0 {
		sign = '-'
	}
	abs := max(secs, -secs)
	name := fmt.Sprintf("UTC%c%02d:%02d", sign, abs/3600, abs%3600/60)
	return time.FixedZone(name, secs), name
}

// readableRow turns an entry into what the page shows; see historyRow.
func readableRow(loc *lang.Localizer, e store.HistoryEntry, zone *time.Location, origin string) historyRow {
	r := historyRow{At: momentIn(e.At, zone), LeadID: e.LeadID, LeadTitle: e.LeadTitle,
		UserID: e.UserID, UserName: e.UserName, Code: e.ErrorCode}
	r.Path = fmt.Sprintf("/crm/lead/details/%d/", e.LeadID)
	r.URL = origin + r.Path
	r.Via = viaText(loc, e.Via)
	for i, id := range e.ContactIDs {
		if i == historyContactsShown {
			r.More = len(e.ContactIDs) - i
			break
		}
		c := historyContact{ID: id}
		if i < len(e.ContactNames) {
			c.Name = e.ContactNames[i]
		}
		r.Contacts = append(r.Contacts, c)
	}
	n := len(e.ContactIDs)
	r.Kind, r.Outcome = "success", loc.T("history.outcome_ok")
	switch {
	case e.Outcome == store.OutcomeError:
		r.Kind, r.Outcome = "danger", loc.T("history.outcome_error")
		r.Summary = loc.T("history.not_unlinked", "Reason", loc.T(historyReason(e.ErrorCode)))
		if e.Action == store.ActionUndo {
			r.Summary = loc.T("history.not_restored", "Reason", loc.T(historyReason(e.ErrorCode)))
		}
	case e.Outcome == store.OutcomeRefused:
		r.Kind, r.Outcome = "warning", loc.T("history.outcome_refused")
		r.Summary = loc.T("history.undo_refused")
	case e.Action == store.ActionUndo:
		r.Summary = loc.N("history.restored", n)
	case e.Outcome == store.OutcomeUncounted:
		r.Summary = loc.T("history.unlinked_uncounted")
	case n == 0:
		r.Summary = loc.T("history.nothing_to_unlink")
	default:
		r.Summary = loc.N("history.unlinked", n)
	}
	if e.Outcome == store.OutcomeError || e.Outcome == store.OutcomeRefused {
		// The contacts of a failed attempt were not touched: listing
		// them would read as if they had been.
		r.Contacts, r.More = nil, 0
	}
	return r
}

// historyReason is the catalogue key that says, in a few words, why an
// action failed, from the code the entry kept: a Bitrix24 error code, or
// the app's own name for a failure without one (see addHistory).
func historyReason(code string) string {
	switch strings.ToUpper(code) {
	case "ACCESS_DENIED", "INVALID_CREDENTIALS", "USER_ACCESS_ERROR", "INSUFFICIENT_SCOPE":
		return "history.reason_denied"
	case "NOT_FOUND":
		return "history.reason_not_found"
	case "QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT":
		return "history.reason_busy"
	case "UNREACHABLE":
		return "history.reason_unreachable"
	case "SESSION_EXPIRED", "EXPIRED_TOKEN", "INVALID_TOKEN", "NO_AUTH_FOUND", "INVALID_GRANT":
		return "history.reason_session"
	}
	// CRM methods answer "not found" without a code; the entry keeps the
	// description in parentheses.
	if strings.Contains(strings.ToLower(code), "not found") {
		return "history.reason_not_found"
	}
	return "history.reason_other"
}

// viaText says where an entry came from, in a few words after the user's
// name: "from the lead list", "by automation", "in a bulk run". The tab,
// where the app began and most entries come from, goes unsaid, as does a
// value this version does not know.
func viaText(loc *lang.Localizer, via string) string {
	switch via {
	case store.ViaList:
		return loc.T("history.via_list")
	case store.ViaAutomation:
		return loc.T("history.via_automation")
	case store.ViaBulk:
		return loc.T("history.via_bulk")
	}
	return ""
}
