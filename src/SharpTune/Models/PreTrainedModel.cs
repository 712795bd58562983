using SharpTune.Engine;
using SharpTune.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Base of every SharpTune model. Submodules are named exactly like transformers' so parameter names equal
/// checkpoint keys; loading and saving are therefore generic. Derived classes build their layers, call
/// <c>RegisterComponents()</c>, and implement <see cref="Forward"/> and, where transformers does, weight init and tying.
/// </summary>
public abstract class PreTrainedModel : nn.Module
{
    protected PreTrainedModel(string name, PretrainedConfig config) : base(name) => Config = config;

    public PretrainedConfig Config { get; }

    /// <summary>Prefix of the base model inside task models (e.g. "bert", "model", "transformer"): a base
    /// checkpoint loads into a task model and vice versa by adding or stripping it.</summary>
    public virtual string BaseModelPrefix => "";

    /// <summary>Parameter names that share storage with another parameter (tied embeddings); not saved twice.</summary>
    public virtual IReadOnlyCollection<string> TiedParameterNames => [];

    public abstract ModelOutput Forward(ModelInputs inputs);

    /// <summary>The transformers class name written to <c>architectures</c> on save: every model passes it as its module name.</summary>
    public string ArchitectureName => GetName();

    /// <summary>Initialises one parameter the checkpoint did not provide, as transformers' _init_weights does.</summary>
    protected virtual void InitializeMissing(string name, Tensor parameter)
    {
        var std = Config.Get("initializer_range", 0.02);
        using var noGrad = no_grad();
        if (name.EndsWith(".bias", StringComparison.Ordinal) || name.EndsWith("LayerNorm.bias", StringComparison.Ordinal))
            parameter.zero_();
        else if (name.Contains("norm", StringComparison.OrdinalIgnoreCase) && parameter.dim() == 1)
            parameter.fill_(1.0);
        else
            parameter.normal_(0, std);
    }

    /// <summary>Re-points tied parameters after loading (e.g. the LM head to the input embeddings).</summary>
    protected virtual void TieWeights()
    {
    }

    /// <summary>Initialises every floating parameter as transformers' _init_weights does (training from scratch),
    /// then ties weights.</summary>
    public void InitializeWeights()
    {
        foreach (var (name, parameter) in named_parameters())
            if (!TiedParameterNames.Contains(name) && parameter.is_floating_point())
                InitializeMissing(name, parameter);
        TieWeights();
    }

    /// <summary>transformers' gradient_checkpointing_enable: every encoder/decoder layer stack in this model recomputes
    /// its layers' activations during backward instead of storing them (training mode only; see
    /// <see cref="Blocks.GradientCheckpointing"/>). Results are unchanged; memory drops, compute grows by about one forward.</summary>
    public void GradientCheckpointingEnable() => SetGradientCheckpointing(true);

    public void GradientCheckpointingDisable() => SetGradientCheckpointing(false);

    /// <summary>transformers' is_gradient_checkpointing.</summary>
    public bool IsGradientCheckpointing => LayerStacks().Any(s => s.GradientCheckpointing);

    private void SetGradientCheckpointing(bool enabled)
    {
        var stacks = LayerStacks().ToList();
        if (stacks.Count == 0)
            throw new NotSupportedException($"{GetType().Name} does not support gradient checkpointing (it has no encoder or decoder layer stack)");
        foreach (var stack in stacks)
            stack.GradientCheckpointing = enabled;
    }

    // named_modules leaves out the root, which is itself the stack for bare decoder models.
    private IEnumerable<Blocks.IGradientCheckpointable> LayerStacks() =>
        ModuleTree.UniqueModules(this).Select(m => m.Module).Prepend(this).Distinct(ReferenceEqualityComparer.Instance).OfType<Blocks.IGradientCheckpointable>();

    public long ParameterCount(bool trainableOnly = false) =>
        parameters().Where(p => !trainableOnly || p.requires_grad).Sum(p => p.numel());

    /// <summary>Copies the checkpoint's tensors into the parameters and buffers of the same name (converting dtype),
    /// initialises the missing ones, and reports missing and unexpected keys.</summary>
    public LoadReport LoadWeights(Checkpoint checkpoint)
    {
        var available = new HashSet<string>(checkpoint.Names, StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        var initialized = new List<string>();
        using (no_grad())
        {
            var targets = named_parameters().Select(p => (p.name, (Tensor)p.parameter))
                .Concat(named_buffers().Select(b => (b.name, b.buffer)))
                .Where(t => !TiedParameterNames.Contains(t.Item1));
            foreach (var (name, target) in targets)
            {
                var key = ResolveKey(name, available);
                if (key is null)
                {
                    missing.Add(name);
                    if (target.is_floating_point())
                    {
                        InitializeMissing(name, target);
                        initialized.Add(name);
                    }
                    continue;
                }
                used.Add(key);
                using var source = checkpoint.Load(key);
                if (!source.shape.SequenceEqual(target.shape))
                    throw new InvalidDataException(
                        $"{checkpoint.Directory}: tensor '{key}' has shape [{string.Join(", ", source.shape)}], the model expects [{string.Join(", ", target.shape)}] (does config.json match the weights?)");
                target.copy_(source);
            }
        }
        TieWeights();
        var unexpected = available.Except(used).Where(k => !IsIgnorableKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        return new LoadReport(missing, unexpected, initialized);
    }

    /// <summary>Keys a checkpoint may carry that have no parameter here (buffers transformers no longer saves).</summary>
    protected virtual bool IsIgnorableKey(string key) =>
        key.EndsWith("position_ids", StringComparison.Ordinal) || key.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)
        || (TiedParameterNames.Contains(key));

    private string? ResolveKey(string name, HashSet<string> available)
    {
        if (available.Contains(name))
            return name;
        if (BaseModelPrefix.Length == 0)
            return null;
        var prefix = BaseModelPrefix + ".";
        if (name.StartsWith(prefix, StringComparison.Ordinal) && available.Contains(name[prefix.Length..]))
            return name[prefix.Length..];
        return available.Contains(prefix + name) ? prefix + name : null;
    }

    /// <summary>Writes <c>config.json</c> and safetensors weights (sharded above <paramref name="maxShardBytes"/>)
    /// with transformers' key names, optionally converting floating weights to <paramref name="dtype"/>.</summary>
    public void SavePretrained(string directory, ScalarType? dtype = null, long maxShardBytes = 5L * 1024 * 1024 * 1024)
    {
        Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, parameter) in named_parameters())
            if (!TiedParameterNames.Contains(name))
                tensors.Add(new(name, Convert(parameter, dtype)));
        foreach (var (name, buffer) in named_buffers(include_nonpersistent: false))
            tensors.Add(new(name, Convert(buffer, dtype)));

        var config = Config.Clone();
        // transformers records the saved class, so a classifier fine-tuned from a masked-LM checkpoint reloads as a classifier.
        config.Set("architectures", new System.Text.Json.Nodes.JsonArray(ArchitectureName));
        var stored = dtype ?? parameters().FirstOrDefault(p => p.is_floating_point())?.dtype ?? ScalarType.Float32;
        config.DType = TorchRuntime.DTypeName(stored);
        ShardedSafeTensors.Save(directory, tensors, maxShardBytes);
        config.Save(directory);
    }

    private static Tensor Convert(Tensor tensor, ScalarType? dtype) =>
        dtype is { } target && tensor.is_floating_point() && tensor.dtype != target ? tensor.detach().to(target) : tensor.detach();
}
