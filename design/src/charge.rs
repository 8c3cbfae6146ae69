//! Charges as data (issue 14 §7): what a visit (or a deposit at booking) costs and how it
//! was paid — the receivable, the discount, the deposits applied and what was received —
//! by one of the original's charge types (单次付清 at the desk, 项目疗程 / 年度套餐 from a
//! course's sessions, 预充值 from a prepaid account). A charge is idempotent by its
//! `reference`: a retry answers the first, never a second charge. Pure: the kernel's
//! `store::charges` stores and decides.

use serde::{Deserialize, Serialize};

use crate::course::ChargeType;

/// Why a charge was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// 治疗收费: a visit's treatment, at the payment step.
    Visit,
    /// 预约定金: money taken when a visit is booked, applied when the visit is charged.
    Deposit,
}

impl Purpose {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Visit => "visit",
            Purpose::Deposit => "deposit",
        }
    }

    /// The purpose a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        [Purpose::Visit, Purpose::Deposit]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// How money paid at the desk came in (单次付清 and deposits paid there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    /// 现金.
    Cash,
    /// 银行卡.
    Card,
    /// 微信支付.
    Wechat,
    /// 支付宝.
    Alipay,
    /// 转账.
    Transfer,
}

impl PayMethod {
    /// Every method, in the order the desk offers them.
    pub const ALL: [PayMethod; 5] = [
        PayMethod::Cash,
        PayMethod::Card,
        PayMethod::Wechat,
        PayMethod::Alipay,
        PayMethod::Transfer,
    ];

    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::Cash => "cash",
            PayMethod::Card => "card",
            PayMethod::Wechat => "wechat",
            PayMethod::Alipay => "alipay",
            PayMethod::Transfer => "transfer",
        }
    }

    /// The method a word names.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// Whether a charge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Paid: it stands.
    Paid,
    /// Voided: its money went back to the account, or its session to the course.
    Void,
}

impl ChargeStatus {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Paid => "paid",
            ChargeStatus::Void => "void",
        }
    }

    /// The status a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        [ChargeStatus::Paid, ChargeStatus::Void]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// When a course charge deducts its session: at once (the desk sells a session over the
/// counter), or when the treatment is done (a visit's payment step: a patient who pays and
/// leaves before her treatment keeps her session).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionAt {
    /// Deducted with the charge.
    #[default]
    Charge,
    /// Checked with the charge, deducted by the treatment's `use_session`.
    Treatment,
}

/// What became of the session a course charge pays with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Deducted from the course.
    Used,
    /// Not yet: the treatment deducts it.
    Pending,
    /// Given back to the course (the charge was voided).
    Restored,
}

impl SessionState {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Used => "used",
            SessionState::Pending => "pending",
            SessionState::Restored => "restored",
        }
    }

    /// The state a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        [
            SessionState::Used,
            SessionState::Pending,
            SessionState::Restored,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A charge as shown. Amounts are yuan with two decimals; `receivable − discount −
/// deposit = received + covered` where `covered` is what a course's session paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Charge {
    /// Its id.
    pub id: String,
    /// The caller's reference (`visit-<pid>` at a visit's payment step): a retry with it
    /// answers this charge.
    pub reference: String,
    /// Whose: the patient's record id.
    pub holder: String,
    /// Why it was made.
    pub purpose: Purpose,
    /// How it was paid.
    pub charge_type: ChargeType,
    /// The treatment charged for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment: Option<String>,
    /// The booking it belongs to (a deposit's, or a booked visit's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
    /// The visit's process, when charged at its payment step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<u64>,
    /// 应收: what it costs.
    pub receivable: String,
    /// 优惠: taken off.
    pub discount: String,
    /// Deposits of the same booking applied to it.
    pub deposit: String,
    /// 实收: money received now (at the desk, or from the account).
    pub received: String,
    /// What a course's session covered.
    pub covered: String,
    /// The prepaid account it was taken from (预充值).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The course whose session pays it (项目疗程, 年度套餐).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course: Option<String>,
    /// What became of that session: used, pending (the treatment deducts it), restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionState>,
    /// The branch of the visit it is for (its booking's, a walk-in's); none: every
    /// branch's desk sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// How the desk was paid (单次付清, a deposit at the desk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<PayMethod>,
    /// Whether it stands.
    pub status: ChargeStatus,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who charged.
    pub actor: String,
    /// When (RFC 3339).
    pub at: String,
    /// Who voided it, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided: Option<Voided>,
}

/// How a charge was voided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Voided {
    /// Who.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why.
    pub reason: String,
}

/// The money of a charge in cents, worked out before anything is stored: what is left to
/// pay once the discount and the deposits are taken off, and how it splits between
/// money received and a session covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// 应收.
    pub receivable: i64,
    /// 优惠.
    pub discount: i64,
    /// Deposits applied (never more than is left after the discount).
    pub deposit: i64,
    /// Money received now.
    pub received: i64,
    /// What a session covered.
    pub covered: i64,
}

impl Split {
    /// Splits `receivable` less `discount` less up to `deposits` (what the booking's
    /// deposits hold) by the charge type: a course's session covers what is left, anything
    /// else receives it. `None` when the discount is negative or above the receivable.
    pub fn of(
        charge_type: ChargeType,
        receivable: i64,
        discount: i64,
        deposits: i64,
    ) -> Option<Split> {
        if receivable < 0 || discount < 0 || discount > receivable || deposits < 0 {
            return None;
        }
        let due = receivable - discount;
        let deposit = deposits.min(due);
        let left = due - deposit;
        let (received, covered) = match charge_type {
            ChargeType::Course | ChargeType::Yearly => (0, left),
            ChargeType::Single | ChargeType::Prepaid => (left, 0),
        };
        Some(Split {
            receivable,
            discount,
            deposit,
            received,
            covered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_splits_exactly() -> Result<(), &'static str> {
        let s = Split::of(ChargeType::Prepaid, 380_000, 20_000, 50_000).ok_or("no split")?;
        assert_eq!((s.deposit, s.received, s.covered), (50_000, 310_000, 0));
        assert_eq!(
            s.receivable - s.discount,
            s.deposit + s.received + s.covered
        );
        let s = Split::of(ChargeType::Course, 380_000, 0, 0).ok_or("no split")?;
        assert_eq!((s.received, s.covered), (0, 380_000));
        // A deposit larger than what is due is applied up to it.
        let s = Split::of(ChargeType::Single, 10_000, 5_000, 8_000).ok_or("no split")?;
        assert_eq!((s.deposit, s.received), (5_000, 0));
        assert!(Split::of(ChargeType::Single, 100, 101, 0).is_none());
        assert!(Split::of(ChargeType::Single, 100, -1, 0).is_none());
        for m in PayMethod::ALL {
            assert_eq!(PayMethod::parse(m.as_str()), Some(m));
        }
        Ok(())
    }
}
