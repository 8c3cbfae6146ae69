//! Courses and packages as data (issue 14 §7): a patient buys N sessions of a treatment
//! (项目疗程, a course; 年度套餐, a yearly package) that expire on a day; each treatment
//! deducts one session under the caller's reference, and voiding that treatment restores
//! it. Sessions used never exceed the sessions bought nor go below zero. Pure: the
//! kernel's `store::courses` stores and decides.

use serde::{Deserialize, Serialize};

/// The most sessions one course holds.
pub const MAX_SESSIONS: i64 = 1_000;

/// How the patient pays for what she gets: the charge types of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeType {
    /// 单次付清: one visit, paid at once.
    Single,
    /// 项目疗程: a course of N sessions of one treatment.
    Course,
    /// 年度套餐: a yearly package of sessions.
    Yearly,
    /// 预充值: paid from a prepaid account.
    Prepaid,
}

impl ChargeType {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeType::Single => "single",
            ChargeType::Course => "course",
            ChargeType::Yearly => "yearly",
            ChargeType::Prepaid => "prepaid",
        }
    }

    /// The type a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ChargeType::Single,
            ChargeType::Course,
            ChargeType::Yearly,
            ChargeType::Prepaid,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A course as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Course {
    /// Its id.
    pub id: String,
    /// Whose: the patient's record id.
    pub holder: String,
    /// The treatment its sessions are of.
    pub treatment: String,
    /// `course` or `yearly`.
    pub charge_type: ChargeType,
    /// Sessions bought.
    pub sessions: i64,
    /// Sessions used (deducted and not restored).
    pub used: i64,
    /// Sessions left.
    pub left: i64,
    /// The last day a session may be used (YYYY-MM-DD).
    pub expires_on: String,
    /// When it was sold.
    pub created_at: String,
}

/// One deduction or restoration of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionUse {
    /// Its place in the course's history, from 1.
    pub seq: i64,
    /// The treatment's reference it is for.
    pub reference: String,
    /// `use` (deducted) or `restore` (the treatment voided).
    pub kind: String,
    /// Sessions used after it.
    pub used: i64,
    /// Who.
    pub actor: String,
    /// When.
    pub at: String,
}
