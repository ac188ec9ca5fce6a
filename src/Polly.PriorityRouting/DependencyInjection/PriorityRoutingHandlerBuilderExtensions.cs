using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Polly.PriorityRouting;

/// <summary>
/// Configures a priority routing handler registered with <c>AddPriorityRoutingHandler</c>.
/// </summary>
public static class PriorityRoutingHandlerBuilderExtensions
{
    /// <summary>
    /// Binds the options to a configuration section and reloads them when it changes. Unknown keys (with the nearest
    /// known one), values that do not convert and values of the wrong shape are reported at validation with their path,
    /// for example <c>Routing.Backends[0].Prioirty is not a known setting (did you mean Priority?).</c>
    /// </summary>
    /// <param name="builder">The handler builder.</param>
    /// <param name="section">The configuration section.</param>
    /// <returns>The same builder.</returns>
    public static IPriorityRoutingHandlerBuilder Configure(this IPriorityRoutingHandlerBuilder builder, IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);

        builder.Services.AddOptions<PriorityRoutingHandlerOptions>(builder.PipelineName).Configure(options => Bind(section, options));
        builder.Services.AddSingleton<IOptionsChangeTokenSource<PriorityRoutingHandlerOptions>>(
            new ConfigurationChangeTokenSource<PriorityRoutingHandlerOptions>(builder.PipelineName, section));
        return builder;
    }

    /// <summary>
    /// Configures the options in code.
    /// </summary>
    /// <param name="builder">The handler builder.</param>
    /// <param name="configure">Configures the options.</param>
    /// <returns>The same builder.</returns>
    public static IPriorityRoutingHandlerBuilder Configure(this IPriorityRoutingHandlerBuilder builder, Action<PriorityRoutingHandlerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);

        builder.Services.AddOptions<PriorityRoutingHandlerOptions>(builder.PipelineName).Configure(configure);
        return builder;
    }

    /// <summary>
    /// Configures the options in code, with access to services.
    /// </summary>
    /// <param name="builder">The handler builder.</param>
    /// <param name="configure">Configures the options.</param>
    /// <returns>The same builder.</returns>
    public static IPriorityRoutingHandlerBuilder Configure(
        this IPriorityRoutingHandlerBuilder builder,
        Action<PriorityRoutingHandlerOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);

        builder.Services.AddOptions<PriorityRoutingHandlerOptions>(builder.PipelineName).Configure<IServiceProvider>(
            (options, services) => configure(options, services));
        return builder;
    }

    /// <summary>
    /// Gives one backend a source of bearer tokens, called per attempt on that backend only and sent as
    /// <c>Authorization: Bearer …</c>. Works with Microsoft Entra ID without a dependency on Azure libraries.
    /// </summary>
    /// <param name="builder">The handler builder.</param>
    /// <param name="backendName">The backend's name; validation fails if no backend has it.</param>
    /// <param name="tokenProvider">Returns a token; cache tokens there, it runs on every attempt.</param>
    /// <returns>The same builder.</returns>
    public static IPriorityRoutingHandlerBuilder AddBearerToken(
        this IPriorityRoutingHandlerBuilder builder,
        string backendName,
        Func<CancellationToken, ValueTask<string>> tokenProvider)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(backendName);
        ArgumentNullException.ThrowIfNull(tokenProvider);

        // Post-configure: applied after every (re)binding, so the source survives configuration reloads.
        builder.Services.AddOptions<PriorityRoutingHandlerOptions>(builder.PipelineName).PostConfigure(options =>
        {
            if (options.BindingFailed)
            {
                return; // The backends did not bind: a missing name would be a false consequence.
            }

            var backend = options.Routing?.Backends?.FirstOrDefault(b => b?.GetEffectiveName() == backendName);
            if (backend is null)
            {
                options.BindingErrors.Add($"Routing.Backends has no backend named '{backendName}' for the bearer token source.");
                return;
            }

            backend.BearerTokenProvider = tokenProvider;
        });
        return builder;
    }

    private static void Bind(IConfigurationSection section, PriorityRoutingHandlerOptions options)
    {
        if (!section.Exists())
        {
            // A misspelled section name binds nothing: say so, rather than blame the empty backend list it leaves.
            options.MissingSection = section.Path;
            return;
        }

        // Check the keys first: the binder stops at its first error and its message loses the position of list items.
        // On any error nothing is bound, and validation reports these errors alone — rules checked against defaults
        // would only add false consequences ("Backends must contain at least one backend").
        var errors = ConfigurationBindingChecker.Check(section, options.GetType());
        if (errors.Count == 0)
        {
            try
            {
                section.Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
                return;
            }
            catch (InvalidOperationException e)
            {
                // Not expected after the check; the binder's innermost message is the most precise one it has.
                errors.Add(e.GetBaseException().Message);
            }
        }

        options.BindingFailed = true;
        options.BindingErrors.AddRange(errors);
    }
}
