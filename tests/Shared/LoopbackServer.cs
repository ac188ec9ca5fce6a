using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Polly.PriorityRouting.Testing;

/// <summary>
/// Real Kestrel servers for tests: bound to 127.0.0.1 on a port the OS picks, quiet, started and addressed the same way
/// in every test project (linked into each).
/// </summary>
internal static class LoopbackServer
{
    /// <summary>Creates a server bound to <c>http://127.0.0.1:0</c>; map its handler, then call <see cref="StartAsync"/>.</summary>
    public static WebApplication Create()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.Urls.Add("http://127.0.0.1:0");
        return app;
    }

    /// <summary>Starts the server and returns its base address, with a trailing slash.</summary>
    public static async Task<Uri> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new Uri(address + "/");
    }
}
