package bitrix24

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// ID is a Bitrix24 identifier. The API sends IDs as JSON numbers in some
// methods (crm.lead.contact.items.get) and as strings in others
// (crm.lead.get), so ID accepts both, plus null and "" as zero.
type ID int64

// UnmarshalJSON implements json.Unmarshaler.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) || bytes.Equal(b, []byte(`""`)) {
		*id = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("bitrix24: %q is not an ID", b)
	}
	*id = ID(n)
	return nil
}

// Bool is a Bitrix24 flag: "Y"/"N" strings in CRM, true/false elsewhere.
type Bool bool

// UnmarshalJSON implements json.Unmarshaler.
func (v *Bool) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case `"Y"`, `"y"`, `true`, `"1"`, `1`, `"true"`:
		*v = true
	default:
		*v = false
	}
	return nil
}
