//! The event catalogue as people read it: every [`EventName`] with a title, in groups, worded as
//! the product describes its webhook events. The API lists it (`GET /api/v1/events`) so that a
//! client can offer the events by name without a copy of its own.

use super::EventName::{self, *};

/// A group of related events, e.g. those of test cases.
#[derive(Debug)]
pub struct Group {
    pub title: &'static str,
    /// Each event of the group with its title, in catalogue order.
    pub events: &'static [(EventName, &'static str)],
}

/// Every event of the catalogue, once, in [`EventName::ALL`]'s order.
pub const CATALOGUE: &[Group] = &[
    Group {
        title: "Test cases",
        events: &[
            (CaseCreated, "Create test case"),
            (CaseUpdated, "Update test case"),
            (CaseDeleted, "Delete test case"),
            (CaseCloned, "Clone test case"),
        ],
    },
    Group {
        title: "Test suites",
        events: &[
            (SuiteCreated, "Create test suite"),
            (SuiteUpdated, "Update test suite"),
            (SuiteDeleted, "Delete test suite"),
            (SuiteCloned, "Clone test suite"),
        ],
    },
    Group {
        title: "Test plans",
        events: &[
            (PlanCreated, "Create test plan"),
            (PlanUpdated, "Update test plan"),
            (PlanDeleted, "Delete test plan"),
        ],
    },
    Group {
        title: "Shared steps",
        events: &[
            (SharedStepCreated, "Create shared step"),
            (SharedStepUpdated, "Update shared step"),
            (SharedStepDeleted, "Delete shared step"),
        ],
    },
    Group {
        title: "Milestones",
        events: &[
            (MilestoneCreated, "Create milestone"),
            (MilestoneUpdated, "Update milestone"),
            (MilestoneDeleted, "Delete milestone"),
        ],
    },
    Group {
        title: "Custom fields",
        events: &[
            (CustomFieldCreated, "Create custom field"),
            (CustomFieldUpdated, "Update custom field"),
            (CustomFieldDeleted, "Delete custom field"),
        ],
    },
    Group {
        title: "Test runs",
        events: &[
            (RunStarted, "Test run start"),
            (RunAborted, "Test run aborted"),
            (RunCompleted, "Complete test run"),
            (RunDeleted, "Delete test run"),
            (RunUpdated, "Test cases added to run"),
            (RunReportChanged, "Public link turned on"),
        ],
    },
    Group {
        title: "Defects",
        events: &[
            (DefectCreated, "Create defect"),
            (DefectResolved, "Resolve defect"),
            (DefectDeleted, "Delete defect"),
            (DefectUpdated, "Update defect"),
        ],
    },
    Group {
        title: "Test reviews",
        events: &[
            (ReviewCreated, "Create test review"),
            (ReviewUpdated, "Update test review"),
            (ReviewApprovalStatusChanged, "Approval status change"),
            (ReviewReviewerAdded, "Reviewer added"),
            (ReviewReviewerRemoved, "Reviewer removed"),
            (ReviewMerged, "Merge test review"),
            (ReviewReopened, "Reopen test review"),
            (ReviewCommented, "Comment test review"),
            (ReviewDeclined, "Decline test review"),
            (ReviewDeleted, "Delete test review"),
        ],
    },
    Group {
        title: "Results",
        events: &[
            (ResultCreated, "Create test run results"),
            (ResultUpdated, "Update test run results"),
            (ResultDeleted, "Delete test run results"),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_event_once_in_catalogue_order_each_titled() {
        let listed: Vec<EventName> = CATALOGUE
            .iter()
            .flat_map(|group| group.events.iter().map(|(name, _)| *name))
            .collect();
        assert_eq!(listed, EventName::ALL);
        assert_eq!(listed.len(), 43);
        for group in CATALOGUE {
            assert!(!group.title.is_empty() && !group.events.is_empty());
            // A group holds one family of names.
            let family = group.events[0].0.family();
            for (name, title) in group.events {
                assert_eq!(name.family(), family, "{name} in {}", group.title);
                assert!(!title.is_empty(), "{name}");
            }
        }
    }
}
