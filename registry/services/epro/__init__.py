"""Patients answer their follow-up questionnaires themselves, through a link per visit window.

The public names, by concern:
- what is asked: `questions_for(visit)` (questions.py);
- who may be contacted: `may_contact` / `may_email` / `contact_refusal` (links.py);
- links: `link_create`, `link_find`, `link_problem`, `link_revoke`, `link_url`,
  `link_status` (links.py);
- answers: `draft_save`, `answers_submit` (answers.py);
- the e-mails: `invitations_send`, run by the digest task (invitations.py);
- what the clinic sees: `pending_invitations_for`, `links_of_patient`,
  `digest_summary`, `response_rates` (figures.py).
No HTTP here: the pages are registry/epro/ (a channel).
"""

from .answers import CONFLICT, LANDED, LinkDead, answers_submit, answers_summary, draft_for, draft_save
from .figures import digest_summary, links_of_patient, pending_invitations_for, response_rates
from .invitations import (
    InvitationRun,
    InvitationsNotSent,
    ResendRefused,
    invitations_send,
    link_resend,
    mails_due,
)
from .links import (
    NOT_YET,
    contact_refusal,
    link_create,
    link_find,
    link_opened,
    link_problem,
    link_revoke,
    link_status,
    link_url,
    links_revoke_for,
    may_contact,
    may_contact_row,
    may_email,
    patient_email,
    patient_user,
    valid_days,
    visit_to_ask,
)
from .questions import Question, answers_read, questions_for

__all__ = [
    "CONFLICT", "LANDED", "NOT_YET", "InvitationRun", "InvitationsNotSent", "LinkDead", "Question",
    "ResendRefused", "link_resend",
    "answers_read", "answers_submit", "answers_summary", "contact_refusal", "digest_summary",
    "draft_for", "draft_save", "invitations_send", "link_create", "link_find", "link_opened",
    "link_problem", "link_revoke", "link_status", "link_url", "links_of_patient",
    "links_revoke_for", "mails_due", "may_contact", "may_contact_row", "may_email", "patient_email",
    "patient_user",
    "pending_invitations_for", "response_rates", "questions_for", "valid_days", "visit_to_ask",
]
