using System.Globalization;
using System.Text.Json;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Quantization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Peft;

/// <summary>
/// LoRA adapters injected into a model (peft's <c>PeftModel</c> + <c>LoraModel</c>): the targeted linear layers of
/// <see cref="BaseModel"/> are wrapped in place by <see cref="LoraLinear"/>, everything else is frozen, and several
/// named adapters can be added, loaded, switched, merged and saved in PEFT's format
/// (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c> with keys like
/// <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>). The base model stays the module that runs
/// (and trains): <see cref="Forward"/> simply calls it.
/// </summary>
public sealed class PeftModel
{
    public const string WeightsFileName = "adapter_model.safetensors";
    public const string DefaultAdapter = "default";
    private const string KeyPrefix = "base_model.model.";

    private readonly Dictionary<string, LoraConfig> _configs = new(StringComparer.Ordinal);

    private PeftModel(PreTrainedModel model) => BaseModel = model;

    /// <summary>The model with the adapters injected.</summary>
    public PreTrainedModel BaseModel { get; }

    public IReadOnlyDictionary<string, LoraConfig> PeftConfig => _configs;

    public string ActiveAdapter { get; private set; } = DefaultAdapter;

    /// <summary>peft's get_peft_model: adds a new, trainable adapter.</summary>
    public static PeftModel Create(PreTrainedModel model, LoraConfig config, string adapterName = DefaultAdapter)
    {
        var peft = new PeftModel(model);
        peft.AddAdapter(adapterName, config);
        return peft;
    }

    /// <summary>Loads a PEFT LoRA adapter directory (or Hub id, see <see cref="Hub.PretrainedPath"/>) onto
    /// <paramref name="model"/> (inference unless <paramref name="isTrainable"/>).</summary>
    public static PeftModel FromPretrained(PreTrainedModel model, string adapterDirectory, string adapterName = DefaultAdapter, bool isTrainable = false)
    {
        var peft = new PeftModel(model);
        peft.LoadAdapter(Hub.PretrainedPath.Resolve(adapterDirectory), adapterName, isTrainable);
        return peft;
    }

    public IEnumerable<(string Path, LoraLinear Layer)> LoraLayers =>
        ModuleTree.UniqueModules(BaseModel).Where(m => m.Module is LoraLinear).Select(m => (m.Path, (LoraLinear)m.Module));

    /// <summary>Injects a new adapter into every target layer and makes it the active (and only trainable) one.</summary>
    public void AddAdapter(string name, LoraConfig config)
    {
        config.Validate();
        if (_configs.ContainsKey(name))
            throw new ArgumentException($"an adapter named '{name}' already exists");
        var wrapped = LoraLayers.Select(l => l.Path).ToList();
        var targets = ModuleTree.UniqueModules(BaseModel)
            .Where(m => m.Path.Length > 0 && !wrapped.Any(w => m.Path.StartsWith(w + ".", StringComparison.Ordinal)) && config.IsTarget(m.Path))
            .ToList();
        if (targets.Count == 0)
            throw new ArgumentException(
                $"target modules {(config.TargetModulesRegex ?? string.Join(", ", config.TargetModules!))} not found in the base model ({BaseModel.GetType().Name})");
        foreach (var (path, module) in targets)
        {
            var layer = module switch
            {
                LoraLinear existing => existing,
                Linear or QuantizedLinear => Wrap(path, (nn.Module<Tensor, Tensor>)module),
                _ => throw new NotSupportedException($"target module '{path}' is a {module.GetType().Name}; LoRA supports Linear and quantized Linear layers"),
            };
            layer.AddAdapter(name, config.RankFor(path), config.ScalingFor(path), config.LoraDropout, config.InitLoraWeights);
        }
        _configs[name] = config;
        SetAdapter(name);
    }

    /// <summary>Reads an adapter saved by peft or by <see cref="SavePretrained"/>.</summary>
    public void LoadAdapter(string directory, string name, bool isTrainable = false)
    {
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"adapter directory not found: {directory}");
        var config = LoraConfig.FromDirectory(directory) with { InferenceMode = !isTrainable };
        var weights = Path.Combine(directory, WeightsFileName);
        if (!File.Exists(weights))
            throw new FileNotFoundException($"adapter weights not found: {weights}", weights);
        AddAdapter(name, config);
        try
        {
            using var file = SafeTensorsFile.Open(weights);
            LoadAdapterWeights(file, name);
        }
        catch
        {
            DeleteAdapter(name);
            throw;
        }
        SetAdapter(name);
    }

    /// <summary>Makes <paramref name="name"/> the adapter applied in forward passes; only it trains (unless it was
    /// loaded for inference).</summary>
    public void SetAdapter(string name)
    {
        if (!_configs.TryGetValue(name, out var config))
            throw new ArgumentException($"no adapter named '{name}' (have: {string.Join(", ", _configs.Keys)})");
        ActiveAdapter = name;
        foreach (var (_, layer) in LoraLayers)
            layer.ActiveAdapters = layer.Adapters.Contains(name) ? [name] : [];
        MarkTrainable(name, config);
    }

    public void DeleteAdapter(string name)
    {
        if (!_configs.Remove(name))
            throw new ArgumentException($"no adapter named '{name}'");
        foreach (var (_, layer) in LoraLayers)
            layer.DeleteAdapter(name);
        if (ActiveAdapter == name && _configs.Count > 0)
            SetAdapter(_configs.Keys.First());
    }

    /// <summary>Runs the base model alone while the returned scope is alive (peft's disable_adapter()).</summary>
    public IDisposable DisableAdapter()
    {
        var layers = LoraLayers.Select(l => l.Layer).ToList();
        foreach (var layer in layers)
            layer.Disabled = true;
        return new Scope(() => layers.ForEach(l => l.Disabled = false));
    }

    public ModelOutput Forward(ModelInputs inputs) => BaseModel.Forward(inputs);

    /// <summary>Merges the active adapter into the base weights (forward passes then skip it).</summary>
    public void MergeAdapter()
    {
        foreach (var (_, layer) in LoraLayers)
            if (layer.Adapters.Contains(ActiveAdapter))
                layer.Merge(ActiveAdapter);
    }

    public void UnmergeAdapter()
    {
        foreach (var (_, layer) in LoraLayers)
            foreach (var adapter in layer.MergedAdapters.Reverse().ToList())
                layer.Unmerge(adapter);
    }

    /// <summary>peft's merge_and_unload: merges the active adapter and puts the plain base layers back; returns the
    /// base model (with transformers' parameter names), ready for <c>SavePretrained</c>.</summary>
    public PreTrainedModel MergeAndUnload()
    {
        MergeAdapter();
        return Unload();
    }

    /// <summary>Removes every adapter without merging (merged updates stay in the weights).</summary>
    public PreTrainedModel Unload()
    {
        foreach (var (path, layer) in LoraLayers.ToList())
        {
            ModuleTree.Replace(BaseModel, path, layer.BaseLayer);
            layer.ReleaseBaseAndDispose();
        }
        _configs.Clear();
        foreach (var parameter in BaseModel.parameters())
            parameter.requires_grad = false;
        return BaseModel;
    }

    /// <summary>The adapter's tensors under peft's checkpoint keys (adapter name removed).</summary>
    public Dictionary<string, Tensor> AdapterStateDict(string? adapterName = null)
    {
        var name = adapterName ?? ActiveAdapter;
        var config = _configs.TryGetValue(name, out var c) ? c : throw new ArgumentException($"no adapter named '{name}'");
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, layer) in LoraLayers.Where(l => l.Layer.Adapters.Contains(name)))
        {
            state[$"{KeyPrefix}{path}.lora_A.weight"] = layer.LoraA(name).weight;
            state[$"{KeyPrefix}{path}.lora_B.weight"] = layer.LoraB(name).weight;
        }
        foreach (var (parameterName, parameter) in ExtraSavedParameters(config))
            state[KeyPrefix + parameterName] = parameter;
        return state;
    }

    /// <summary>Writes <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> (peft's layout) into
    /// <paramref name="directory"/>.</summary>
    public void SavePretrained(string directory, string? adapterName = null)
    {
        var name = adapterName ?? ActiveAdapter;
        var state = AdapterStateDict(name);
        Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        var tensors = state.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => KeyValuePair.Create(p.Key, p.Value.detach().cpu().contiguous()))
            .ToList();
        SafeTensorsWriter.Save(Path.Combine(directory, WeightsFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var json = _configs[name].ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        AtomicFile.WriteAllText(Path.Combine(directory, LoraConfig.FileName), json);
    }

    /// <summary>Trainable and total parameter counts (quantized weights counted as their full element count).</summary>
    public (long Trainable, long Total) ParameterCounts()
    {
        var parameters = BaseModel.named_parameters().Select(p => p.parameter).ToList();
        var quantized = ModuleTree.UniqueModules(BaseModel).Select(m => m.Module).OfType<QuantizedLinear>().Sum(q => q.InFeatures * q.OutFeatures);
        return (parameters.Where(p => p.requires_grad).Sum(p => p.numel()), parameters.Sum(p => p.numel()) + quantized);
    }

    /// <summary>peft's print_trainable_parameters line.</summary>
    public string TrainableParametersSummary()
    {
        var (trainable, total) = ParameterCounts();
        return string.Create(CultureInfo.InvariantCulture,
            $"trainable params: {trainable:N0} || all params: {total:N0} || trainable%: {100.0 * trainable / Math.Max(1, total):F4}");
    }

    /// <summary>The parameters an optimizer should update.</summary>
    public IReadOnlyList<Parameter> TrainableParameters() => BaseModel.named_parameters().Select(p => p.parameter).Where(p => p.requires_grad).ToList();

    private LoraLinear Wrap(string path, nn.Module<Tensor, Tensor> module)
    {
        var layer = new LoraLinear(module);
        ModuleTree.Replace(BaseModel, path, layer);
        return layer;
    }

    private void MarkTrainable(string active, LoraConfig config)
    {
        foreach (var parameter in BaseModel.parameters())
            parameter.requires_grad = false;
        if (config.InferenceMode)
            return;
        foreach (var (_, layer) in LoraLayers.Where(l => l.Layer.Adapters.Contains(active)))
        {
            layer.LoraA(active).weight.requires_grad = true;
            layer.LoraB(active).weight.requires_grad = true;
        }
        foreach (var (_, parameter) in ExtraSavedParameters(config))
            parameter.requires_grad = true;
    }

    /// <summary>Biases (per <see cref="LoraConfig.Bias"/>) and modules_to_save parameters, by in-model name.</summary>
    private IEnumerable<(string Name, Parameter Parameter)> ExtraSavedParameters(LoraConfig config)
    {
        var loraPaths = LoraLayers.Select(l => l.Path).ToHashSet();
        foreach (var (name, parameter) in BaseModel.named_parameters())
        {
            var owner = name[..Math.Max(0, name.LastIndexOf('.'))];
            var isBias = name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains(".lora_", StringComparison.Ordinal);
            var saved = config.Bias switch
            {
                LoraBias.All => isBias,
                LoraBias.LoraOnly => isBias && owner.EndsWith(".base_layer", StringComparison.Ordinal) && loraPaths.Contains(owner[..^".base_layer".Length]),
                _ => false,
            };
            if (config.ModulesToSave is { } modules && modules.Any(m => IsWithin(owner, m)))
                saved = true;
            if (saved)
                yield return (name, parameter);
        }
    }

    /// <summary>Whether the module at <paramref name="path"/> is, or is inside, a module named <paramref name="module"/>.</summary>
    private static bool IsWithin(string path, string module)
    {
        for (var current = path; ; current = current[..current.LastIndexOf('.')])
        {
            if (current == module || current.EndsWith("." + module, StringComparison.Ordinal))
                return true;
            if (!current.Contains('.'))
                return false;
        }
    }

    private void LoadAdapterWeights(SafeTensorsFile file, string name)
    {
        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, layer) in LoraLayers.Where(l => l.Layer.Adapters.Contains(name)))
        {
            targets[$"{KeyPrefix}{path}.lora_A.weight"] = layer.LoraA(name).weight;
            targets[$"{KeyPrefix}{path}.lora_B.weight"] = layer.LoraB(name).weight;
        }
        var parameters = BaseModel.named_parameters().ToDictionary(p => KeyPrefix + p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        var missing = new HashSet<string>(targets.Keys, StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var key in file.Names)
        {
            // LoRA keys are saved without the adapter name; biases and modules_to_save under their model names.
            var target = targets.GetValueOrDefault(key) ?? parameters.GetValueOrDefault(key)
                         ?? throw new InvalidDataException($"{file.Path}: tensor '{key}' matches no LoRA layer or parameter of the model (wrong base model?)");
            using var source = file.Load(key);
            if (!source.shape.SequenceEqual(target.shape))
                throw new InvalidDataException(
                    $"{file.Path}: tensor '{key}' has shape [{string.Join(", ", source.shape)}], the model expects [{string.Join(", ", target.shape)}]");
            target.copy_(source);
            missing.Remove(key);
        }
        if (missing.Count > 0)
            throw new InvalidDataException($"{file.Path}: missing adapter tensors: {string.Join(", ", missing.Order().Take(5))}{(missing.Count > 5 ? ", ..." : "")}");
    }

    private sealed class Scope(Action onDispose) : IDisposable
    {
        public void Dispose() => onDispose();
    }
}
