using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting;

/// <summary>
/// Every rule of <see cref="PriorityRoutingHandlerOptions"/> — the data annotations of retry and timeouts, then the
/// rules that span fields — with each failure naming the client it belongs to: an app with several clients, or one
/// configuration section per client, must not have to guess which one is wrong.
/// </summary>
internal sealed class PriorityRoutingHandlerOptionsValidation : IValidateOptions<PriorityRoutingHandlerOptions>
{
    private readonly PriorityRoutingHandlerOptionsValidator _annotations = new();
    private readonly PriorityRoutingHandlerOptionsCrossFieldValidator _rules = new();

    public ValidateOptionsResult Validate(string? name, PriorityRoutingHandlerOptions options)
    {
        var failures = new List<string>();
        foreach (var result in new[] { _annotations.Validate(name, options), _rules.Validate(name, options) })
        {
            if (result.Failed)
            {
                failures.AddRange(result.Failures);
            }
        }

        if (failures.Count == 0)
        {
            return ValidateOptionsResult.Success;
        }

        var client = PriorityRoutingHandlerNames.DescribeClient(name);
        return ValidateOptionsResult.Fail(failures.Select(failure => $"{client}: {failure}"));
    }
}
