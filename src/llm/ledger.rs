//! Token and cost accounting with hard caps, shared by every client of a run.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::error::LlmError;
use super::types::Usage;

/// Price of a model per million tokens, in whatever currency the caps use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub prompt_per_mtok: f64,
    pub completion_per_mtok: f64,
}

impl Price {
    /// Cost of `usage` at this price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        (usage.prompt_tokens as f64 * self.prompt_per_mtok
            + usage.completion_tokens as f64 * self.completion_per_mtok)
            / 1e6
    }
}

/// Hard caps; `None` means no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub max_tokens_total: Option<u64>,
    pub max_cost: Option<f64>,
}

/// Running totals; serialisable so a resumed search can continue its budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// Calls admitted (sent, successful or not).
    pub calls: u64,
    pub failed_calls: u64,
    /// Calls refused because a cap was reached.
    pub refused_calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Successful calls whose usage was (partly) estimated.
    pub estimated_calls: u64,
    pub cost: f64,
}

impl LedgerTotals {
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// Shared accounting (`Arc<Ledger>`). A call is admitted while every cap is still above
/// the spent total; once a cap is reached, further calls fail with
/// [`LlmError::BudgetExhausted`] without touching the network. Calls already in flight
/// still finish and are charged, so the overshoot is at most one call per concurrent
/// request.
#[derive(Debug, Default)]
pub struct Ledger {
    budget: Budget,
    prices: HashMap<String, Price>,
    totals: Mutex<LedgerTotals>,
}

impl Ledger {
    pub fn new(budget: Budget) -> Result<Self, LlmError> {
        if let Some(c) = budget.max_cost {
            if !c.is_finite() || c < 0.0 {
                return Err(LlmError::config(format!(
                    "max_cost must be a non-negative number, got {c}"
                )));
            }
        }
        Ok(Ledger {
            budget,
            ..Ledger::default()
        })
    }

    /// No caps and no prices: only counts.
    pub fn unlimited() -> Self {
        Ledger::default()
    }

    /// Sets the price of `model` (prices per 1M tokens).
    pub fn with_price(mut self, model: impl Into<String>, price: Price) -> Result<Self, LlmError> {
        let model = model.into();
        for (what, v) in [
            ("prompt", price.prompt_per_mtok),
            ("completion", price.completion_per_mtok),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(LlmError::config(format!(
                    "{what} price of `{model}` must be a non-negative number, got {v}"
                )));
            }
        }
        self.prices.insert(model, price);
        Ok(self)
    }

    /// Starts from totals saved by an earlier run.
    pub fn with_totals(self, totals: LedgerTotals) -> Self {
        *self.lock() = totals;
        self
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.prices.get(model).copied()
    }

    pub fn totals(&self) -> LedgerTotals {
        self.lock().clone()
    }

    /// A cost cap with an unpriced model could never stop: refuse that configuration.
    pub fn check_model(&self, model: &str) -> Result<(), LlmError> {
        if self.budget.max_cost.is_some() && self.price(model).is_none() {
            return Err(LlmError::config(format!(
                "max_cost is set but model `{model}` has no price; add its price per 1M tokens or drop max_cost"
            )));
        }
        Ok(())
    }

    /// Admits one call or says which cap is reached.
    pub fn admit(&self) -> Result<(), LlmError> {
        let mut t = self.lock();
        let reached = match (self.budget.max_tokens_total, self.budget.max_cost) {
            (Some(cap), _) if t.tokens() >= cap => Some(format!(
                "{} tokens used, cap max_tokens_total = {cap}",
                t.tokens()
            )),
            (_, Some(cap)) if t.cost >= cap => {
                Some(format!("cost {:.6} spent, cap max_cost = {cap}", t.cost))
            }
            _ => None,
        };
        match reached {
            Some(detail) => {
                t.refused_calls += 1;
                Err(LlmError::BudgetExhausted { detail })
            }
            None => {
                t.calls += 1;
                Ok(())
            }
        }
    }

    /// Charges a successful call; returns its cost (0 for unpriced models).
    pub fn charge(&self, model: &str, usage: &Usage) -> f64 {
        let cost = self.price(model).map_or(0.0, |p| p.cost(usage));
        let mut t = self.lock();
        t.prompt_tokens = t.prompt_tokens.saturating_add(usage.prompt_tokens);
        t.completion_tokens = t.completion_tokens.saturating_add(usage.completion_tokens);
        t.estimated_calls += u64::from(usage.estimated);
        t.cost += cost;
        cost
    }

    /// Counts an admitted call that failed.
    pub fn fail(&self) {
        self.lock().failed_calls += 1;
    }

    /// Books a replayed exchange as the live call booked it, so totals match the
    /// recorded run.
    pub(crate) fn book_replayed(&self, exchange: &super::Exchange) {
        use super::Outcome;
        match exchange.outcome {
            Outcome::Ok => {
                self.lock().calls += 1;
                self.charge(&exchange.model, &exchange.usage);
            }
            Outcome::BudgetExhausted => self.lock().refused_calls += 1,
            // Refused before admission, as in the live client.
            Outcome::Config | Outcome::ReplayMissing => {}
            _ => {
                let mut t = self.lock();
                t.calls += 1;
                t.failed_calls += 1;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, LedgerTotals> {
        // Totals are plain counters updated in one statement each: a panic elsewhere
        // cannot leave them half-written, so a poisoned lock is still usable.
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn usage(p: u64, c: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            estimated: false,
        }
    }

    #[test]
    fn cost_is_price_per_million_tokens() {
        let p = Price {
            prompt_per_mtok: 0.15,
            completion_per_mtok: 0.60,
        };
        // 1M prompt + 1M completion tokens cost the sum of the two prices.
        assert!((p.cost(&usage(1_000_000, 1_000_000)) - 0.75).abs() < 1e-12);
        assert!((p.cost(&usage(2000, 500)) - (2000.0 * 0.15 + 500.0 * 0.60) / 1e6).abs() < 1e-15);
    }

    #[test]
    fn token_cap_refuses_once_reached() {
        let l = Ledger::new(Budget {
            max_tokens_total: Some(100),
            max_cost: None,
        })
        .unwrap();
        l.admit().unwrap();
        l.charge("m", &usage(60, 30));
        l.admit().unwrap(); // 90 < 100
        l.charge("m", &usage(10, 5));
        let err = l.admit().unwrap_err();
        assert!(err.is_budget_exhausted());
        assert!(err.to_string().contains("105 tokens"), "{err}");
        let t = l.totals();
        assert_eq!((t.calls, t.refused_calls, t.tokens()), (2, 1, 105));
    }

    #[test]
    fn cost_cap_needs_a_price_and_refuses_once_reached() {
        let l = Ledger::new(Budget {
            max_tokens_total: None,
            max_cost: Some(1.0),
        })
        .unwrap();
        assert!(matches!(l.check_model("m"), Err(LlmError::Config { .. })));
        let l = l
            .with_price(
                "m",
                Price {
                    prompt_per_mtok: 1e6,
                    completion_per_mtok: 0.0,
                },
            )
            .unwrap();
        l.check_model("m").unwrap();
        l.admit().unwrap();
        assert_eq!(l.charge("m", &usage(1, 7)), 1.0);
        assert!(l.admit().unwrap_err().is_budget_exhausted());
    }

    #[test]
    fn bad_numbers_are_config_errors() {
        assert!(Ledger::new(Budget {
            max_tokens_total: None,
            max_cost: Some(f64::NAN)
        })
        .is_err());
        let neg = Price {
            prompt_per_mtok: -1.0,
            completion_per_mtok: 0.0,
        };
        assert!(Ledger::unlimited().with_price("m", neg).is_err());
    }

    #[test]
    fn concurrent_charges_add_up() {
        let l = Arc::new(Ledger::unlimited());
        std::thread::scope(|s| {
            for _ in 0..4 {
                let l = Arc::clone(&l);
                s.spawn(move || {
                    for _ in 0..1000 {
                        l.admit().unwrap();
                        l.charge("m", &usage(3, 2));
                    }
                });
            }
        });
        let t = l.totals();
        assert_eq!(
            (t.calls, t.prompt_tokens, t.completion_tokens),
            (4000, 12000, 8000)
        );
    }

    #[test]
    fn totals_resume() {
        let saved = LedgerTotals {
            prompt_tokens: 50,
            completion_tokens: 50,
            ..LedgerTotals::default()
        };
        let l = Ledger::new(Budget {
            max_tokens_total: Some(100),
            max_cost: None,
        })
        .unwrap()
        .with_totals(saved);
        assert!(l.admit().unwrap_err().is_budget_exhausted());
    }
}
