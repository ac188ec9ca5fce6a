namespace PriorityRouting.Simulation;

/// <summary>How a simulated backend refills its rate-limit budget.</summary>
public enum BudgetRefill
{
    /// <summary>Azure OpenAI: a per-minute quota checked over short windows, refilled whole at each window's end.</summary>
    Windows,

    /// <summary>OpenAI: replenished continuously; the reset it reports is the time until the budget is full again.</summary>
    Continuous,
}
