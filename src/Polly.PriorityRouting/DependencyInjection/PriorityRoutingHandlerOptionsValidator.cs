using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting;

/// <summary>
/// The data-annotation rules of <see cref="PriorityRoutingHandlerOptions"/> (retry and timeouts), source-generated.
/// </summary>
/// <remarks>
/// <see cref="PriorityRoutingHandlerOptions.Routing"/> is validated by
/// <see cref="PriorityRoutingHandlerOptionsCrossFieldValidator"/>, which covers every rule of the strategy once.
/// </remarks>
[OptionsValidator]
internal sealed partial class PriorityRoutingHandlerOptionsValidator : IValidateOptions<PriorityRoutingHandlerOptions>
{
}
