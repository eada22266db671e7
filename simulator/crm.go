package simulator

import (
	"strconv"
	"time"
)

// pageSize is the fixed page of list methods (list-methods-pecularities.md).
const pageSize = 50

// CRM errors. crm.lead.get / crm.contact.get use an empty code
// (crm-lead-get.md); the crm.lead.contact.* family uses NOT_FOUND and
// ACCESS_DENIED (crm-lead-contact-items-delete.md).
func errEmptyCode(status int, desc string) *apiError {
	return &apiError{status: status, code: "", desc: desc}
}

func errIDInvalid() *apiError { return errEmptyCode(400, "ID is not defined or invalid") }
func errNotFound() *apiError  { return errEmptyCode(400, "Not found") }

// SILENT: crm-lead-get.md says only "40x" for "Access denied"; 403.
func errGetDenied() *apiError { return errEmptyCode(403, "Access denied") }
func errNOTFOUND() *apiError  { return &apiError{status: 400, code: "NOT_FOUND", desc: "Not found."} }

// SILENT: the status of ACCESS_DENIED in this family is undocumented; 403.
func errDenied() *apiError {
	return &apiError{status: 403, code: "ACCESS_DENIED", desc: "Access denied."}
}

func nz(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nzID(id int) any {
	if id == 0 {
		return nil
	}
	return strconv.Itoa(id)
}

func dateTime(t time.Time) string { return t.Format("2006-01-02T15:04:05-07:00") }

// leadRecordLocked renders a lead as crm.lead.get does: IDs as strings, unset
// optional fields as null, CONTACT_ID mirroring the primary contact.
func (p *Portal) leadRecordLocked(rec *leadRec) obj {
	var contactID any
	for _, lc := range rec.contacts {
		if lc.Primary {
			contactID = strconv.Itoa(lc.ContactID)
		}
	}
	semantic := "P"
	switch rec.StatusID {
	case "CONVERTED":
		semantic = "S"
	case "JUNK":
		semantic = "F"
	}
	assigned := rec.AssignedByID
	if assigned == 0 {
		assigned = 1
	}
	return newObj().
		Set("ID", strconv.Itoa(rec.ID)).
		Set("TITLE", rec.Title).
		Set("HONORIFIC", nil).
		Set("NAME", rec.Name).
		Set("SECOND_NAME", nil).
		Set("LAST_NAME", nz(rec.LastName)).
		Set("COMPANY_TITLE", nil).
		Set("COMPANY_ID", nil).
		Set("CONTACT_ID", contactID).
		Set("IS_RETURN_CUSTOMER", "N").
		Set("BIRTHDATE", "").
		Set("SOURCE_ID", "WEB").
		Set("SOURCE_DESCRIPTION", nil).
		Set("STATUS_ID", rec.StatusID).
		Set("STATUS_DESCRIPTION", nil).
		Set("POST", nil).
		Set("COMMENTS", nil).
		Set("CURRENCY_ID", "USD").
		Set("OPPORTUNITY", "0.00").
		Set("IS_MANUAL_OPPORTUNITY", "N").
		Set("HAS_PHONE", "N").
		Set("HAS_EMAIL", "N").
		Set("HAS_IMOL", "N").
		Set("ASSIGNED_BY_ID", strconv.Itoa(assigned)).
		Set("CREATED_BY_ID", strconv.Itoa(assigned)).
		Set("MODIFY_BY_ID", strconv.Itoa(assigned)).
		Set("DATE_CREATE", dateTime(rec.created)).
		Set("DATE_MODIFY", dateTime(rec.modified)).
		Set("DATE_CLOSED", "").
		Set("STATUS_SEMANTIC_ID", semantic).
		Set("OPENED", "Y").
		Set("ORIGINATOR_ID", nil).
		Set("ORIGIN_ID", nil).
		Set("MOVED_BY_ID", strconv.Itoa(assigned)).
		Set("MOVED_TIME", dateTime(rec.created)).
		Set("ADDRESS", nil).
		Set("UTM_SOURCE", nil).
		Set("LAST_ACTIVITY_BY", strconv.Itoa(assigned)).
		Set("LAST_ACTIVITY_TIME", dateTime(rec.modified))
}

func (p *Portal) contactRecordLocked(c Contact) obj {
	return newObj().
		Set("ID", strconv.Itoa(c.ID)).
		Set("HONORIFIC", nil).
		Set("NAME", c.Name).
		Set("SECOND_NAME", nz(c.SecondName)).
		Set("LAST_NAME", nz(c.LastName)).
		Set("PHOTO", nil).
		Set("BIRTHDATE", "").
		Set("TYPE_ID", "CLIENT").
		Set("SOURCE_ID", "SELF").
		Set("SOURCE_DESCRIPTION", nil).
		Set("POST", nz(c.Post)).
		Set("COMMENTS", nil).
		Set("OPENED", "Y").
		Set("EXPORT", "Y").
		Set("HAS_PHONE", "N").
		Set("HAS_EMAIL", "N").
		Set("HAS_IMOL", "N").
		Set("ASSIGNED_BY_ID", "1").
		Set("CREATED_BY_ID", "1").
		Set("MODIFY_BY_ID", "1").
		Set("COMPANY_ID", nzID(c.CompanyID)).
		Set("LEAD_ID", nil)
}

// entityID reads "id" or "ID" as crm.lead.get / crm.contact.get accept both.
func entityID(c *callCtx) int {
	if v, ok := c.params.Get("id"); ok {
		return phpInt(v)
	}
	if v, ok := c.params.Get("ID"); ok {
		return phpInt(v)
	}
	return 0
}

func (p *Portal) mLeadGet(c *callCtx) (result, *apiError) {
	id := entityID(c)
	if id <= 0 {
		return result{}, errIDInvalid()
	}
	// Bitrix24 checks the read permission before existence.
	if !c.user.canRead() {
		return result{}, errGetDenied()
	}
	rec, ok := p.leads[id]
	if !ok {
		return result{}, errNotFound()
	}
	return okResult(p.leadRecordLocked(rec))
}

func (p *Portal) mContactGet(c *callCtx) (result, *apiError) {
	id := entityID(c)
	if id <= 0 {
		return result{}, errIDInvalid()
	}
	if !c.user.canRead() {
		return result{}, errGetDenied()
	}
	ct, found := p.contacts[id]
	if !found {
		return result{}, errNotFound()
	}
	return okResult(p.contactRecordLocked(ct))
}

func (p *Portal) mLeadList(c *callCtx) (result, *apiError) {
	if !c.user.canRead() {
		// SILENT: a user without read rights gets an error rather than an
		// empty list.
		return result{}, errGetDenied()
	}
	recs := make([]obj, 0, len(p.leads))
	for _, rec := range p.leads {
		recs = append(recs, p.leadRecordLocked(rec))
	}
	return listResult(c, recs)
}

func (p *Portal) mContactList(c *callCtx) (result, *apiError) {
	if !c.user.canRead() {
		return result{}, errGetDenied()
	}
	recs := make([]obj, 0, len(p.contacts))
	for _, ct := range p.contacts {
		recs = append(recs, p.contactRecordLocked(ct))
	}
	return listResult(c, recs)
}

// ---- crm.lead.contact.* ----
