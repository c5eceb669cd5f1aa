"""The registry seen as a longitudinal REDCap project (read-only).

So that REDCap clients (PyCap, REDCapR) read the registry unchanged, this
module describes the registry as a REDCap project and streams its records in
REDCap's shapes. Fields and data come from the registry's own dataset declarations
(`services.datasets`: each column says where it stands in REDCap), so REDCap and the registry's
export agree row for row and are de-identified the same way (dates as days
from the implant, ages over 89 as "90+", no free text, no identifiers).

The project:
- One arm. Events = timepoints: `baseline_arm_1`, `trial_end_arm_1`,
  `m<N>_arm_1` for every protocol timepoint and every timepoint found in the
  data, `unscheduled_arm_1`, `adverse_events_arm_1` and `device_components_arm_1`.
- Instruments: `enrolment` (patient, baseline event only), `visit` (every
  timepoint event), `adverse_event` (a repeating instrument in
  `adverse_events_arm_1`), `device_component` (a repeating instrument in
  `device_components_arm_1`: one instance per IPG, lead or extension of the patient's
  implants, with its implant ref, manufacturer, model, UDI-DI, coded removal reason and
  its implanted and removed days relative to the implant; never a UDI-PI or serial).
  The timepoint events (not baseline) are repeating events, so a patient's second
  implant episode (a second `m3`) or several unscheduled visits get
  `redcap_repeat_instance` 2, 3, ...
- record_id = the registry id. `<form>_complete` is 2 (Complete) for enrolment,
  completed visits, closed adverse events and device components, otherwise 0
  (Incomplete).
- Coded values use REDCap-style numeric raw codes: the frozen numbering of the
  registry's code lists (`models.choices.NUMBERING`, append only, the same numbers
  as in Stata files), so a raw value never changes meaning; the mapping is also in
  each field's `field_annotation`.

Refuses (RedcapRequestError, with REDCap's wording where REDCap has one):
unknown fields, forms or events, malformed dateRange values.
"""

from .fast import fast_available, record_sql  # noqa: F401
from .fast import record_stream as fast_record_stream  # noqa: F401
from .project import *  # noqa: F403
from .project import __getattr__  # noqa: F401  (FIELDS, FIELD_BY_NAME)
from .records import EAV_COLUMNS, RecordExport, parse_redcap_datetime  # noqa: F401
