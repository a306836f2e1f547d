//! The event catalogue: every name a webhook can subscribe to, as the [`EventName`] enum.

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

macro_rules! event_names {
    ($($variant:ident => $name:literal,)*) => {
        /// The event catalogue: every name a webhook can subscribe to.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventName { $($variant,)* }

        impl EventName {
            /// Every event of the catalogue, in catalogue order.
            pub const ALL: &'static [EventName] = &[$(EventName::$variant,)*];

            /// The wire name, e.g. `run.started`.
            pub const fn as_str(self) -> &'static str {
                match self { $(EventName::$variant => $name,)* }
            }
        }

        impl FromStr for EventName {
            type Err = UnknownEventName;
            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok(EventName::$variant),)*
                    _ => Err(UnknownEventName(name.chars().take(100).collect())),
                }
            }
        }
    };
}

event_names! {
    CaseCreated => "case.created",
    CaseUpdated => "case.updated",
    CaseDeleted => "case.deleted",
    CaseCloned => "case.cloned",
    SuiteCreated => "suite.created",
    SuiteUpdated => "suite.updated",
    SuiteDeleted => "suite.deleted",
    SuiteCloned => "suite.cloned",
    PlanCreated => "plan.created",
    PlanUpdated => "plan.updated",
    PlanDeleted => "plan.deleted",
    SharedStepCreated => "shared_step.created",
    SharedStepUpdated => "shared_step.updated",
    SharedStepDeleted => "shared_step.deleted",
    MilestoneCreated => "milestone.created",
    MilestoneUpdated => "milestone.updated",
    MilestoneDeleted => "milestone.deleted",
    CustomFieldCreated => "custom_field.created",
    CustomFieldUpdated => "custom_field.updated",
    CustomFieldDeleted => "custom_field.deleted",
    RunStarted => "run.started",
    RunAborted => "run.aborted",
    RunCompleted => "run.completed",
    RunDeleted => "run.deleted",
    RunUpdated => "run.updated",
    RunReportChanged => "run.report_changed",
    DefectCreated => "defect.created",
    DefectResolved => "defect.resolved",
    DefectDeleted => "defect.deleted",
    DefectUpdated => "defect.updated",
    ReviewCreated => "review.created",
    ReviewUpdated => "review.updated",
    ReviewApprovalStatusChanged => "review.approval_status_changed",
    ReviewReviewerAdded => "review.reviewer_added",
    ReviewReviewerRemoved => "review.reviewer_removed",
    ReviewMerged => "review.merged",
    ReviewReopened => "review.reopened",
    ReviewCommented => "review.commented",
    ReviewDeclined => "review.declined",
    ReviewDeleted => "review.deleted",
    ResultCreated => "result.created",
    ResultUpdated => "result.updated",
    ResultDeleted => "result.deleted",
}

impl EventName {
    /// The family before the dot (`run` for `run.started`): a small, fixed metric label.
    pub fn family(self) -> &'static str {
        let name = self.as_str();
        name.split_once('.').map_or(name, |(family, _)| family)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event_name {0:?}")]
pub struct UnknownEventName(pub String);

/// The event name of a test delivery, sent on request (`POST …/webhooks/{id}/test`). Not in the
/// catalogue: no webhook subscribes to it, and no published event may carry it.
pub const TEST_EVENT: &str = "webhook.test";

/// The name a delivery is sent under (`X-Qase-Event`): an event of the catalogue, or
/// [`TEST_EVENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveredName {
    Event(EventName),
    Test,
}

impl DeliveredName {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Event(name) => name.as_str(),
            Self::Test => TEST_EVENT,
        }
    }
}

impl From<EventName> for DeliveredName {
    fn from(name: EventName) -> Self {
        Self::Event(name)
    }
}

impl FromStr for DeliveredName {
    type Err = UnknownEventName;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name == TEST_EVENT {
            return Ok(Self::Test);
        }
        name.parse().map(Self::Event)
    }
}

impl fmt::Display for DeliveredName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
