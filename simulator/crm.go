package simulator

import (
	"cmp"
	"strconv"
	"time"
)

// pageSize is the fixed page of list methods (list-methods-pecularities.md).
const pageSize = 50

// CRM errors. crm.lead.get / crm.contact.get use an empty code
// (crm-lead-get.md); the crm.lead.contact.* family uses NOT_FOUND and
// ACCESS_DENIED (crm-lead-contact-items-delete.md).
func errEmptyCode(desc string) *apiError { return apiErr(400, "", desc) }
func errNOTFOUND() *apiError             { return apiErr(400, "NOT_FOUND", "Not found.") }

// SILENT: crm-lead-get.md says only "40x" for "Access denied"; 403.
func errGetDenied() *apiError { return apiErr(403, "", "Access denied") }

// SILENT: the status of ACCESS_DENIED in this family is undocumented; 403.
func errDenied() *apiError { return apiErr(403, "ACCESS_DENIED", "Access denied.") }

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

// leadRecord renders a lead as crm.lead.get does: IDs as strings, unset
// optional fields as null, CONTACT_ID mirroring the primary contact.
func leadRecord(rec *leadRec) obj {
	var contactID any
	for _, lc := range rec.contacts {
		if lc.Primary {
			contactID = strconv.Itoa(lc.ContactID)
		}
	}
	semantic := map[string]string{"CONVERTED": "S", "JUNK": "F"}[rec.StatusID]
	by := strconv.Itoa(cmp.Or(rec.AssignedByID, 1))
	created, modified := dateTime(rec.created), dateTime(rec.modified)
	return fields("ID", strconv.Itoa(rec.ID), "TITLE", rec.Title, "HONORIFIC", nil, "NAME", rec.Name,
		"SECOND_NAME", nil, "LAST_NAME", nz(rec.LastName), "COMPANY_TITLE", nil, "COMPANY_ID", nil,
		"CONTACT_ID", contactID, "IS_RETURN_CUSTOMER", "N", "BIRTHDATE", "", "SOURCE_ID", cmp.Or(rec.SourceID, "WEB"),
		"SOURCE_DESCRIPTION", nil, "STATUS_ID", rec.StatusID, "STATUS_DESCRIPTION", nil, "POST", nil,
		"COMMENTS", nil, "CURRENCY_ID", "USD", "OPPORTUNITY", "0.00", "IS_MANUAL_OPPORTUNITY", "N",
		"HAS_PHONE", "N", "HAS_EMAIL", "N", "HAS_IMOL", "N", "ASSIGNED_BY_ID", by, "CREATED_BY_ID", by,
		"MODIFY_BY_ID", by, "DATE_CREATE", created, "DATE_MODIFY", modified, "DATE_CLOSED", "",
		"STATUS_SEMANTIC_ID", cmp.Or(semantic, "P"), "OPENED", "Y", "ORIGINATOR_ID", nil, "ORIGIN_ID", nil,
		"MOVED_BY_ID", by, "MOVED_TIME", created, "ADDRESS", nil, "UTM_SOURCE", nil,
		"LAST_ACTIVITY_BY", by, "LAST_ACTIVITY_TIME", modified)
}

func contactRecord(c Contact) obj {
	return fields("ID", strconv.Itoa(c.ID), "HONORIFIC", nil, "NAME", c.Name, "SECOND_NAME", nz(c.SecondName),
		"LAST_NAME", nz(c.LastName), "PHOTO", nil, "BIRTHDATE", "", "TYPE_ID", "CLIENT", "SOURCE_ID", "SELF",
		"SOURCE_DESCRIPTION", nil, "POST", nz(c.Post), "COMMENTS", nil, "OPENED", "Y", "EXPORT", "Y",
		"HAS_PHONE", "N", "HAS_EMAIL", "N", "HAS_IMOL", "N", "ASSIGNED_BY_ID", "1", "CREATED_BY_ID", "1",
		"MODIFY_BY_ID", "1", "COMPANY_ID", nzID(c.CompanyID), "LEAD_ID", nil)
}

// crmGet is crm.lead.get or crm.contact.get: "id" or "ID", then the read
// permission (Bitrix24 checks it before existence), then the record.
func crmGet[R any](recs map[int]R, render func(R) obj) methodFunc {
	return func(c *callCtx) (result, *apiError) {
		v, ok := c.params.Get("id")
		if !ok {
			v = c.params.vals["ID"]
		}
		id := phpInt(v)
		rec, ok := recs[id]
		switch {
		case id <= 0:
			return result{}, errEmptyCode("ID is not defined or invalid")
		case !c.user.canRead():
			return result{}, errGetDenied()
		case !ok:
			return result{}, errEmptyCode("Not found")
		}
		return okResult(render(rec))
	}
}

// crmList is crm.lead.list or crm.contact.list. SILENT: a user without read
// rights gets an error rather than an empty list.
func crmList[R any](recs map[int]R, render func(R) obj) methodFunc {
	return func(c *callCtx) (result, *apiError) {
		if !c.user.canRead() {
			return result{}, errGetDenied()
		}
		all := make([]obj, 0, len(recs))
		for _, rec := range recs {
			all = append(all, render(rec))
		}
		return listResult(c, all)
	}
}
