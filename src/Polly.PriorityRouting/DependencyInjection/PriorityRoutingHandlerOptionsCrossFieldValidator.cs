using System.Globalization;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting;

/// <summary>
/// The rules that span fields: every rule of the routing strategy under <c>Routing.</c>, the attempt timeout against
/// the total timeout, credentials for backends that exist, and values that did not bind.
/// </summary>
internal sealed class PriorityRoutingHandlerOptionsCrossFieldValidator : IValidateOptions<PriorityRoutingHandlerOptions>
{
    public ValidateOptionsResult Validate(string? name, PriorityRoutingHandlerOptions options)
    {
        if (options.BindingFailed)
        {
            // Nothing was bound: rules checked against the defaults would report false consequences.
            return ValidateOptionsResult.Fail(options.BindingErrors);
        }

        if (options.MissingSection is { } section && options.Routing?.Backends is not { Count: > 0 })
        {
            // Nothing came from configuration, and no backend from code: the section's name is the likely mistake.
            return ValidateOptionsResult.Fail(
                $"The configuration section '{section}' is missing or empty; it must hold the handler's options, at least Routing:Backends.");
        }

        var errors = new List<string>(options.BindingErrors);
        if (options.Routing is not null)
        {
            errors.AddRange(PriorityRoutingStrategyOptionsValidator.Validate(options.Routing, "Routing."));
        }

        if (options.AttemptTimeout is not null && options.TotalRequestTimeout is not null &&
            options.AttemptTimeout.Timeout > options.TotalRequestTimeout.Timeout)
        {
            errors.Add(string.Create(
                CultureInfo.InvariantCulture,
                $"AttemptTimeout.Timeout ({options.AttemptTimeout.Timeout}) must not exceed TotalRequestTimeout.Timeout ({options.TotalRequestTimeout.Timeout})."));
        }

        // The first-byte wait runs inside the total timeout: one at least as long never fires, and a backend that stalls
        // after its headers would end in the caller's timeout instead of a failover.
        RequireShorterThanTotal(options.Routing?.FirstByteTimeout, "Routing.FirstByteTimeout", options.TotalRequestTimeout, errors);

        // A request waiting in the strategy for a refill counts against the total timeout: one at least as long would
        // turn a promised wait into the caller's timeout instead of an answer.
        RequireShorterThanTotal(options.Routing?.MaxQueueWait, "Routing.MaxQueueWait", options.TotalRequestTimeout, errors);

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void RequireShorterThanTotal(TimeSpan? value, string path, HttpTimeoutStrategyOptions? total, List<string> errors)
    {
        if (value is { } wait && total is not null && wait >= total.Timeout)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{path} ({wait}) must be less than TotalRequestTimeout.Timeout ({total.Timeout})."));
        }
    }
}
