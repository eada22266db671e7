package simulator

// entityTypeLead is crm.item.*'s entityTypeId of leads (crm-item-get.md).
const entityTypeLead = 1

// mItemGet is crm.item.get for leads: the lead in the universal API's
// camelCase shape with the key set of the docs' example
// (testdata/recorded/rest_crm_item_get_lead.json), numbers as numbers, and
// contactIds, every linked contact's id as one array ([] when none) in the
// links' order. Errors as crm-item-get.md lists them: NOT_FOUND for an
// unknown type or item and ACCESS_DENIED without read permission, both 400.
func (p *Portal) mItemGet(c *callCtx) (result, *apiError) {
	if c.int("entityTypeId") != entityTypeLead {
		return result{}, apiErr(400, "NOT_FOUND", "SPA not found")
	}
	if !c.user.canRead() {
		return result{}, apiErr(400, "ACCESS_DENIED", "Access denied")
	}
	rec, ok := p.leads[c.int("id")]
	if !ok {
		return result{}, apiErr(400, "NOT_FOUND", "Element not found")
	}
	return okResult(fields("item", leadItem(rec)))
}

// leadItem is a lead in the universal API's camelCase shape.
func leadItem(rec *leadRec) obj {
	contactIDs := make([]any, 0, len(rec.contacts))
	contactID := 0
	for _, lc := range rec.contacts {
		contactIDs = append(contactIDs, lc.ContactID)
		if lc.Primary {
			contactID = lc.ContactID
		}
	}
	// The classic record carries the semantic and the defaults.
	classic := leadRecord(rec)
	by := max(rec.AssignedByID, 1)
	created, modified := dateTime(rec.created), dateTime(rec.modified)
	return fields("id", rec.ID, "createdTime", created, "dateCreateShort", nil, "updatedTime", modified,
		"dateModifyShort", nil, "createdBy", by, "updatedBy", by, "assignedById", by, "opened", "Y", "companyId", 0,
		"contactId", contactID, "stageId", rec.StatusID, "isConvert", nil, "statusDescription", nil,
		"stageSemanticId", classic.vals["STATUS_SEMANTIC_ID"], "productId", nil, "opportunity", 0, "currencyId", "USD",
		"sourceId", classic.vals["SOURCE_ID"], "sourceDescription", nil, "title", rec.Title, "name", rec.Name, "lastName", nz(rec.LastName),
		"secondName", nil, "shortName", nil, "companyTitle", nil, "post", nil, "address", nil, "comments", nil,
		"webformId", 0, "originatorId", nil, "originId", nil, "dateClosed", nil, "birthdate", nil, "honorific", nil,
		"hasPhone", "N", "hasEmail", "N", "hasImol", "N", "login", nil, "isReturnCustomer", "N",
		"searchContent", rec.Title, "isManualOpportunity", "N", "movedBy", by, "movedTime", created, "lastActivityBy", by,
		"lastActivityTime", modified, "phoneMobile", "", "phoneWork", "", "phoneMailing", "", "emailHome", "",
		"emailWork", "", "emailMailing", "", "skype", nil, "icq", nil, "imol", "", "email", "", "phone", "", "fm", []any{},
		"utmSource", nil, "utmMedium", nil, "utmCampaign", nil, "utmContent", nil, "utmTerm", nil, "observers", []any{},
		"contactIds", contactIDs, "entityTypeId", entityTypeLead)
}
